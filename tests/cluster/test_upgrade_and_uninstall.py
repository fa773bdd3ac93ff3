"""Day-2 on the local cluster, in this order: `helm upgrade` with no value changed restarts no pod and changes no
Secret; an upgrade of a config value rolls only the Airflow pods and keeps every secret, encrypted data and issued
token; `helm rollback` brings the previous config back; an `--atomic` upgrade that cannot become ready is undone with
the running pods kept; `helm uninstall` leaves exactly what docs/chart.md says it keeps. (Last in this folder: it
uninstalls the release.)"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

from scripts.airflow_api import Api
from scripts.paths import ROOT
from tests.cluster.conftest import Deployment
from tests.support.cluster import NAMESPACE, PROFILES, RELEASE
from tests.support.helm import CHART, FULLNAME, helm_binary

pytestmark = pytest.mark.slow
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
PROBE_PASSWORD = "encrypted-before-the-upgrade"
PROBE_VALUE = "written before the upgrade"
KEPT_KINDS = "secrets,persistentvolumeclaims,configmaps,services,serviceaccounts,deployments,statefulsets,jobs,pods"


def long_running_pods(deployment: Deployment) -> list[dict]:
    """The release's pods that a Deployment or StatefulSet keeps and that are not on their way out (a replaced pod
    can still be terminating when `helm upgrade --wait` returns). Not a per-revision Job's pods, nor a task's worker
    pod (a KubernetesExecutor pod has no owner: one the executor is still cleaning up from an earlier module would
    come and go during the upgrade)."""
    pods = deployment.cluster.get("pods", "--selector", SELECTOR)["items"]
    return [
        pod
        for pod in pods
        if any(owner["kind"] in ("ReplicaSet", "StatefulSet") for owner in pod["metadata"].get("ownerReferences", []))
        and not pod["metadata"].get("deletionTimestamp")
    ]


def running_pods(deployment: Deployment) -> dict[str, str]:
    """uid -> name of the release's long-running pods."""
    return {pod["metadata"]["uid"]: pod["metadata"]["name"] for pod in long_running_pods(deployment)}


def pods_by_component(deployment: Deployment) -> dict[str, set[str]]:
    """component -> uids of the release's long-running pods."""
    found: dict[str, set[str]] = {}
    for pod in long_running_pods(deployment):
        found.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/component"], set()).add(pod["metadata"]["uid"])
    return found


def secrets(deployment: Deployment) -> dict[str, tuple[dict, str]]:
    items = deployment.cluster.get("secrets", "--selector", SELECTOR)["items"]
    return {s["metadata"]["name"]: (s["data"], s["metadata"]["resourceVersion"]) for s in items}


def test_helm_upgrade_with_no_value_changed_restarts_no_pod_and_changes_no_secret(deployment: Deployment) -> None:
    pods_before, secrets_before = running_pods(deployment), secrets(deployment)
    deployment.upgrade()
    assert running_pods(deployment) == pods_before
    assert secrets(deployment) == secrets_before


def airflow_cli(deployment: Deployment, *args: str) -> str:
    """`airflow <args>` in the scheduler (it has the DB and the Fernet key)."""
    return deployment.cluster.kubectl("exec", f"deployment/{FULLNAME}-scheduler", "--", "airflow", *args).stdout


def revision(deployment: Deployment) -> int:
    return json.loads(deployment.cluster.helm("status", RELEASE, "--output", "json").stdout)["version"]


def test_helm_upgrade_of_a_config_value_rolls_the_airflow_pods_only_and_keeps_secrets_data_and_tokens(
    deployment: Deployment,
) -> None:
    """A Connection and a Variable encrypted before the upgrade decrypt after it, and an API token issued before it
    still works: the Fernet key, JWT secret, API secret key and UI passwords are the same bytes."""
    probe = f"upgrade_probe_{uuid.uuid4().hex[:8]}"  # the DB outlives the release (its PVC is kept)
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        api = deployment.api(port)
        api.call("POST", "/api/v2/connections", {"connection_id": probe, "conn_type": "http", "host": "example.com",
                                                 "password": PROBE_PASSWORD})  # fmt: skip
        api.call("POST", "/api/v2/variables", {"key": probe, "value": PROBE_VALUE})
        token = api.token
    pods_before, secrets_before = pods_by_component(deployment), secrets(deployment)

    deployment.upgrade("--set", "config.core.default_task_retries=2")

    pods_after = pods_by_component(deployment)
    rolled = {component for component, uids in pods_after.items() if not uids & pods_before.get(component, set())}
    assert rolled == {"api-server", "scheduler", "dag-processor", "triggerer"}  # not Azurite, not PostgreSQL
    assert secrets(deployment) == secrets_before
    assert airflow_cli(deployment, "config", "get-value", "core", "default_task_retries").split()[-1] == "2"
    connection = json.loads(airflow_cli(deployment, "connections", "get", probe, "--output", "json"))
    assert connection[0]["password"] == PROBE_PASSWORD
    assert str(connection[0]["is_encrypted"]) == "True"  # the CLI's JSON gives the flag as text
    assert airflow_cli(deployment, "variables", "get", probe).strip() == PROBE_VALUE
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        api = Api(f"http://127.0.0.1:{port}")
        api.token = token  # issued by the api-server pod the upgrade replaced
        assert api.call("GET", f"/api/v2/variables/{probe}")["value"] == PROBE_VALUE


def test_helm_rollback_restores_the_previous_config_with_healthy_pods_and_the_same_secrets(
    deployment: Deployment,
) -> None:
    secrets_before, current = secrets(deployment), revision(deployment)
    deployment.cluster.helm("rollback", RELEASE, str(current - 1), "--wait", "--timeout", "10m")
    assert revision(deployment) == current + 1
    assert airflow_cli(deployment, "config", "get-value", "core", "default_task_retries").split()[-1] == "0"
    assert secrets(deployment) == secrets_before
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        deployment.cluster.kubectl("rollout", "status", f"deployment/{FULLNAME}-{component}", "--timeout=60s")


def test_a_failed_atomic_upgrade_rolls_back_to_the_running_pods(deployment: Deployment) -> None:
    """An image that does not exist never becomes ready: --atomic undoes the upgrade; the pods that ran stay."""
    pods_before, current = pods_by_component(deployment), revision(deployment)
    values = [arg for profile in PROFILES for arg in ("--values", str(profile))]
    argv = [str(helm_binary()), "--kubeconfig", str(deployment.cluster.kubeconfig), "--namespace", NAMESPACE,
            "upgrade", RELEASE, str(CHART), *values, "--set", "images.airflow.tag=does-not-exist",
            "--atomic", "--timeout", "90s"]  # fmt: skip
    failed = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert failed.returncode != 0
    assert "rolled back" in failed.stderr + failed.stdout, failed.stderr[-2000:]
    assert revision(deployment) == current + 2  # the failed upgrade, then the rollback
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        deployment.cluster.kubectl("rollout", "status", f"deployment/{FULLNAME}-{component}", "--timeout=300s",
                                   timeout=320)  # fmt: skip
    after = pods_by_component(deployment)
    assert {c for c, uids in after.items() if uids & pods_before.get(c, set())} == set(pods_before)


def documented_kept() -> set[tuple[str, str]]:
    """(kind, name) rows of the table under "What `helm uninstall` keeps" in docs/chart.md."""
    text = (ROOT / "docs" / "chart.md").read_text()
    section = text.split("## What `helm uninstall` keeps", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \|", section, re.MULTILINE)
    return {(kind, name.replace("<fullname>", FULLNAME)) for kind, name in rows}


def test_helm_uninstall_leaves_only_what_the_docs_say_is_kept(deployment: Deployment) -> None:
    assert len(documented_kept()) == 7
    deployment.cluster.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
    deadline = time.monotonic() + 120
    while True:
        left = deployment.cluster.get(KEPT_KINDS, "--selector", SELECTOR)["items"]
        remaining = {(item["kind"], item["metadata"]["name"]) for item in left}
        if not any(kind == "Pod" for kind, _ in remaining) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert remaining == documented_kept()
    assert deployment.cluster.helm("list", "--all").stdout.count(RELEASE) == 0
