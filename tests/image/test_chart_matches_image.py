"""The chart (rendered with the kind profile) and the kind workflow agree with the Dockerfile and with each other.

Image name, PYTHONPATH, AIRFLOW_HOME, user, XCom backend and the baked DAG folder must be spelled the same in the
Dockerfile and in every Airflow container the chart renders; the kind profile's git-sync settings must point at
the dev Git server of config/kind/dags-git.yaml and the layout scripts/push-dags writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from scripts.paths import ROOT
from tests.image.dockerfile import parse
from tests.support.helm import render as render_chart

PROFILE = ROOT / "config" / "profiles" / "kind.yaml"
KIND_IMAGE = "airflow-azblob:local"
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def kind_node_version() -> str:
    image = yaml.safe_load((ROOT / "config/kind/cluster.yaml").read_text())["nodes"][0]["image"]
    return re.search(r":v(\d+\.\d+\.\d+)@", image)[1]


def render(set_values: dict[str, Any] | None = None, *, profile: str | None = None) -> list[dict[str, Any]]:
    """The chart's objects (tests/support/helm.py's render) for the Kubernetes version of kind's node image."""
    return render_chart(set_values, profile=profile, kube_version=kind_node_version()).objects


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every workload, plus the KubernetesExecutor worker pod template kept in a ConfigMap."""
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in POD_OWNERS:
            spec = doc["spec"]
            if doc["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            yield where, spec if doc["kind"] == "Pod" else spec["template"]["spec"]
        elif doc["kind"] == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if key.endswith((".yaml", ".yml")) and "kind: Pod" in text:
                    yield f"{where}[{key}]", yaml.safe_load(text)["spec"]


def airflow_containers(docs: list[dict[str, Any]], image: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for where, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if container.get("image") == image:
                found.append((f"{where}:{container['name']}", container, spec))
    return found


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


@pytest.fixture(scope="module")
def kind_render() -> list[dict[str, Any]]:
    if not PROFILE.exists():
        pytest.skip(f"{PROFILE.relative_to(ROOT)} is not written yet (the chart issue provides it)")
    return render(profile=PROFILE.stem)


def test_kind_profile_runs_the_image_scripts_kind_builds(kind_render: list[dict[str, Any]]) -> None:
    assert f'IMAGE="${{IMAGE:-{KIND_IMAGE}}}"' in (ROOT / "scripts" / "kind").read_text()
    containers = airflow_containers(kind_render, KIND_IMAGE)
    components = {where.split("/")[1].split(":")[0] for where, _, _ in containers}
    assert containers, f"no container of the kind render runs {KIND_IMAGE}"
    assert any("scheduler" in c for c in components), components
    assert any("pod-template" in where or "[" in where for where, _, _ in containers), "worker pods"
    foreign = [
        (where, c["image"])
        for where, spec in pod_specs(kind_render)
        for c in spec.get("containers", [])
        if "apache/airflow" in c["image"]
    ]
    assert not foreign, f"containers still on the stock image: {foreign}"


def test_airflow_containers_use_the_images_paths_user_and_backend(kind_render: list[dict[str, Any]]) -> None:
    dockerfile = parse()
    for where, container, spec in airflow_containers(kind_render, KIND_IMAGE):
        env = env_of(container)
        if "PYTHONPATH" in env:
            assert dockerfile.env["PYTHONPATH"] in env["PYTHONPATH"].split(":"), where
        if "AIRFLOW_HOME" in env:
            assert env["AIRFLOW_HOME"] == "/opt/airflow", where
        if "AIRFLOW__CORE__XCOM_BACKEND" in env:
            assert env["AIRFLOW__CORE__XCOM_BACKEND"] == dockerfile.env["AIRFLOW__CORE__XCOM_BACKEND"], where
        user = (container.get("securityContext") or {}).get("runAsUser") or (spec.get("securityContext") or {}).get(
            "runAsUser"
        )
        if user is not None:
            assert str(user) == dockerfile.user, f"{where} runs as {user}, the image's user is {dockerfile.user}"


def test_rendered_airflow_config_selects_the_images_xcom_backend(kind_render: list[dict[str, Any]]) -> None:
    values = [
        match[1]
        for doc in kind_render
        if doc["kind"] == "ConfigMap"
        for text in (doc.get("data") or {}).values()
        for match in re.finditer(r"^\s*xcom_backend\s*=\s*(\S+)", text, re.MULTILINE)
    ]
    assert values, "no rendered airflow.cfg sets [core] xcom_backend"
    assert set(values) == {parse().env["AIRFLOW__CORE__XCOM_BACKEND"]}


def test_image_mode_reads_dags_where_the_dockerfile_bakes_them() -> None:
    baked = next(target for _, target, flags in parse().copies if flags.get("from") == "dags").rstrip("/")
    docs = render({"dags.mode": "image", "images.airflow.repository": "airflow-azblob"})
    folders = {
        m[1]
        for doc in docs
        if doc["kind"] == "ConfigMap"
        for text in (doc.get("data") or {}).values()
        for m in re.finditer(r"^\s*dags_folder\s*=\s*(\S+)", text, re.MULTILINE)
    }
    assert folders == {baked}


def git_server() -> tuple[str, int, str]:
    """(service name, port, repository path in git:// URLs) of config/kind/dags-git.yaml."""
    docs = list(yaml.safe_load_all((ROOT / "config/kind/dags-git.yaml").read_text()))
    service = next(d for d in docs if d["kind"] == "Service")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    base = next(word.split("=", 1)[1] for word in command if word.startswith("--base-path="))
    init = " ".join(deployment["spec"]["template"]["spec"]["initContainers"][0]["command"])
    repo = re.search(rf"--bare --initial-branch=main {re.escape(base)}(/\S+)", init)[1]
    return service["metadata"]["name"], service["spec"]["ports"][0]["port"], repo


def test_kind_profile_git_sync_pulls_main_from_the_dev_git_server(kind_render: list[dict[str, Any]]) -> None:
    name, port, repo = git_server()
    assert (name, port, repo) == ("dags-git", 9418, "/dags.git")
    syncs = [
        env_of(c)
        for _, spec in pod_specs(kind_render)
        for c in spec.get("initContainers", []) + spec.get("containers", [])
        if "git-sync" in c.get("image", "")
    ]
    assert syncs, "the kind profile renders no git-sync container"
    for env in syncs:
        assert env.get("GITSYNC_REPO") == f"git://{name}:{port}{repo}"
        assert env.get("GITSYNC_REF") == "main"


def test_kind_profile_dags_subpath_is_where_push_dags_writes() -> None:
    if not PROFILE.exists():
        pytest.skip(f"{PROFILE.relative_to(ROOT)} is not written yet")
    profile = yaml.safe_load(PROFILE.read_text())
    sub_path = profile["dags"]["gitSync"].get("subPath")
    assert sub_path == "dags"
    assert 'SUBDIR="dags"' in (ROOT / "scripts" / "push-dags").read_text()
