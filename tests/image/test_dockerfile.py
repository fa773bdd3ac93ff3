"""The Dockerfile's promises, read from the file: base image, constraints, layout, user, labels, build context."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.paths import ROOT
from tests.image.dockerfile import parse

BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|yum|dnf|gcc|g\+\+|make|build-essential|cargo|rustc)\b")


def requirements_pin(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert match, f"requirements.txt pins no {package}"
    return match[1]


def test_base_image_is_the_official_airflow_image_of_the_build_args() -> None:
    dockerfile = parse()
    assert dockerfile.args["AIRFLOW_VERSION"] == "3.3.2"
    assert dockerfile.args["PYTHON_VERSION"] == "3.12"
    assert dockerfile.final.base == "apache/airflow:3.3.2-python3.12"
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in text
    assert "FROM ${AIRFLOW_BASE_IMAGE}" in text


def test_no_syntax_directive_that_would_pull_a_frontend() -> None:
    first = (ROOT / "Dockerfile").read_text().splitlines()[0]
    assert not first.lower().replace(" ", "").startswith("#syntax="), first


def test_requirements_pin_the_same_airflow_as_the_base_image() -> None:
    assert requirements_pin("apache-airflow") == parse().args["AIRFLOW_VERSION"]


def test_constraints_default_to_the_repositorys_lock_file_bind_mounted_into_the_build() -> None:
    dockerfile = parse()
    pip = dockerfile.pip_install()
    assert pip.requirements == ["requirements.txt"]
    assert pip.constraints == ["/tmp/requirements.lock"]
    assert dockerfile.args["AIRFLOW_CONSTRAINTS_LOCATION"] == "/tmp/requirements.lock"
    assert pip.mounts["/tmp/requirements.lock"] == "requirements.lock"


def test_the_ca_bundle_is_a_build_secret_pip_trusts_and_never_a_layer() -> None:
    [run] = [r for r in parse().final_values("RUN") if "pip install" in r]
    assert "--mount=type=secret,id=ca-bundle" in run
    assert "PIP_CERT=/run/secrets/ca-bundle" in run
    assert not [c for c in parse().copies if any("ca" in Path(s).name for s in c[0])]


def test_include_is_copied_to_opt_airflow_and_on_pythonpath() -> None:
    dockerfile = parse()
    assert (["include/"], "/opt/airflow/include/", {"chown": "airflow:0"}) in dockerfile.copies
    assert dockerfile.env["PYTHONPATH"] == "/opt/airflow"
    assert dockerfile.env["AIRFLOW__CORE__XCOM_BACKEND"] == "include.azblob_xcom_backend.WasbXComBackend"


def test_dags_are_baked_only_on_request_into_opt_airflow_dags() -> None:
    dockerfile = parse()
    assert dockerfile.args["BAKE_DAGS"] == "false"
    copies = {target: (sources, flags) for sources, target, flags in dockerfile.copies}
    assert copies["/opt/airflow/dags/"] == (["/dags/"], {"from": "dags", "chown": "airflow:0"})
    stages = {stage.name: stage for stage in dockerfile.stages}
    assert ("COPY", "dags/ /dags/") in stages["dags-true"].instructions
    assert not [i for i in stages["dags-false"].instructions if i[0] == "COPY"]


def test_image_runs_as_the_airflow_user() -> None:
    assert parse().user == "50000"


def test_no_build_tools_are_installed() -> None:
    offenders = [run for run in parse().runs if BUILD_TOOLS.search(run.replace("--no-cache-dir", ""))]
    assert not offenders


def test_oci_labels_describe_the_image() -> None:
    labels = parse().labels
    for key in ("title", "description", "version", "revision", "source", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "3.3.2"
    assert labels["org.opencontainers.image.base.name"] == "apache/airflow:3.3.2-python3.12"


def test_dockerignore_admits_every_build_input_and_nothing_heavy() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "the build context is an allowlist"
    dockerfile = parse()
    inputs = {"requirements.txt", "dags/"} | {
        s for sources, _, flags in dockerfile.copies if "from" not in flags for s in sources
    }
    inputs |= set(dockerfile.pip_install().mounts.values())
    for path in inputs:
        assert f"!{path}" in rules, f".dockerignore must admit {path}"
        assert (ROOT / path).exists() or path == "dags/", f"build input {path} is missing from the repository"


def test_everything_the_image_imports_is_compiled_to_bytecode_at_build_time() -> None:
    runs = parse().final_values("RUN")
    [compile_run] = [run for run in runs if "compileall" in run]
    assert "/home/airflow/.local/lib" in compile_run
    assert "/opt/airflow/include" in compile_run
