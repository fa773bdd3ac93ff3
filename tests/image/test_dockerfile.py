"""The Dockerfile's promises, read from the file: base image, constraints, layout, user, labels, build context."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from scripts.paths import ROOT
from tests.image.dockerfile import parse, requirement_pins

BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|yum|dnf|gcc|g\+\+|make|build-essential|cargo|rustc)\b")


IMAGE_LOCK = ROOT / "requirements-image.lock"
TAMPERED = "print('not the six the lock hashed')\n"


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a pip-compile output file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        if match := re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", entry):
            entries[match[1].lower()] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return entries


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel with the locked name and version and other content: what a tampered index or mirror would serve."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py2.py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": TAMPERED,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def dockerfile_pip_install(tmp_path: Path, requirement: str) -> subprocess.CompletedProcess:
    """The Dockerfile's `pip install` words, with a lock of this one requirement, offline from tmp_path/wheels into
    tmp_path/target. No pip configuration of this machine (an index, find-links) takes part."""
    lock = tmp_path / "requirements-image.lock"
    lock.write_text(requirement + "\n")
    words = parse().pip_install().words
    words = [str(lock) if word.endswith("requirements-image.lock") else word for word in words[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    argv = [sys.executable, "-m", "pip", *words, "--no-index", "--find-links", str(tmp_path / "wheels")]
    argv += ["--target", str(tmp_path / "target"), "--disable-pip-version-check"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


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
    assert requirement_pins()["apache-airflow"] == parse().args["AIRFLOW_VERSION"]


def test_pip_installs_the_hashed_image_lock_bind_mounted_into_the_build_wheels_only() -> None:
    pip = parse().pip_install()
    assert pip.requirements == ["requirements-image.lock"]
    assert pip.constraints == []
    assert "--require-hashes" in pip.words
    assert pip.words[pip.words.index("--only-binary") + 1] == ":all:"


def test_the_image_lock_is_requirements_txt_at_requirements_lock_versions_every_pin_hashed() -> None:
    image, full = lock_entries(IMAGE_LOCK), lock_entries(ROOT / "requirements.lock")
    unhashed = [name for name, (_, hashes) in image.items() if not hashes]
    assert not unhashed, f"{IMAGE_LOCK.name} has pins without --hash (run `make lock`): {unhashed}"
    drifted = {
        name: (version, full.get(name, (None,))[0])
        for name, (version, _) in image.items()
        if full.get(name, (None,))[0] != version
    }
    assert not drifted, (
        f"{IMAGE_LOCK.name} and requirements.lock disagree (name: (image, full)), run `make lock`: {drifted}"
    )
    assert requirement_pins().items() <= {name: version for name, (version, _) in image.items()}.items()


def test_a_tampered_package_fails_the_dockerfiles_pip_install_and_installs_nothing(tmp_path: Path) -> None:
    """The Dockerfile's own pip flags against a wheel that is not the one the lock hashed: pip refuses it. The
    control installs the same wheel once the lock names its hash, so the refusal is the hash and nothing else."""
    name, (version, hashes) = "six", lock_entries(IMAGE_LOCK)["six"]
    wheel = fake_wheel(tmp_path / "wheels", name, version)
    refused = dockerfile_pip_install(tmp_path, f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
    assert refused.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr, refused.stderr
    assert not (tmp_path / "target" / "six.py").exists()
    own = hashlib.sha256(wheel.read_bytes()).hexdigest()
    accepted = dockerfile_pip_install(tmp_path, f"{name}=={version} --hash=sha256:{own}")
    assert accepted.returncode == 0, accepted.stderr
    assert (tmp_path / "target" / "six.py").read_text() == TAMPERED


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
    inputs = {"dags/"} | {s for sources, _, flags in dockerfile.copies if "from" not in flags for s in sources}
    inputs |= set(dockerfile.pip_install().mounts.values())
    for path in inputs:
        assert f"!{path}" in rules, f".dockerignore must admit {path}"
        assert (ROOT / path).exists() or path == "dags/", f"build input {path} is missing from the repository"


def test_everything_the_image_imports_is_compiled_to_bytecode_at_build_time() -> None:
    runs = parse().final_values("RUN")
    [compile_run] = [run for run in runs if "compileall" in run]
    assert "/home/airflow/.local/lib" in compile_run
    assert "/opt/airflow/include" in compile_run
