"""networkPolicies on the local cluster, where kube-router's firewall enforces them (scripts/localcluster/cluster.py):
the release upgraded with its policies on still runs a DAG green (the Execution API, XComs and logs in Azurite, the
init container's Git clone) and a pod operator step (the Kubernetes API address the chart looked up itself), while
code in a task pod (a pod made from the KubernetesExecutor's own pod template) can no longer open a connection to
PostgreSQL or the kubelet, which the same probe reaches before the upgrade; with the pod operator off, not to the
Kubernetes API either. A pod of the release that holds no DB URL (labelled as the create-containers Job) is kept
from PostgreSQL by the DB's own ingress policy. The teardown upgrades back to the profiles (policies off)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from scripts.airflow_api import Api, run_dag, wait_for
from scripts.localcluster.cluster import APISERVER_PORT, NODE_IP
from tests.cluster.conftest import Deployment
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
RUN_BOUND_S = 600
KUBELET_PORT = 10250  # scripts/localcluster/config/kubelet.yaml
PROBE_BOUND_S = 240
# Where a task connects, as (host, port): what it needs, and what the fence must keep it from.
NEEDED = {"execution-api": (f"{FULLNAME}-api-server", 8080), "azurite": (f"{FULLNAME}-azurite", 10000)}
FENCED = {
    "postgresql": (f"{FULLNAME}-postgresql", 5432),
    "kubelet": (NODE_IP, KUBELET_PORT),
    "kubernetes-service": ("kubernetes.default.svc", 443),
    "kubernetes-apiserver": (NODE_IP, APISERVER_PORT),
}
KUBERNETES_API = ("kubernetes-service", "kubernetes-apiserver")
# A connection a new pod opens before the enforcer has programmed its rules may go through (kube-router sets up a
# pod's chains when it sees the pod running): the probe tries each target named in PROBE_AWAIT_CLOSED until a
# connection fails or this bound passes, and reports how long that took; the others it tries once.
FENCE_BOUND_S = 30
PROBE = f"""
import json, os, socket, time
awaited = json.loads(os.environ["PROBE_AWAIT_CLOSED"])
def connects(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False
report = {{"dns": socket.gethostbyname({NEEDED["execution-api"][0]!r})}}
report["needed"] = {{name: connects(*target) for name, target in {NEEDED!r}.items()}}
report["fenced"] = {{}}
for name, target in {FENCED!r}.items():
    started = time.monotonic()
    while name in awaited and connects(*target) and time.monotonic() - started < {FENCE_BOUND_S}:
        time.sleep(0.5)
    report["fenced"][name] = {{"open": connects(*target), "after_s": round(time.monotonic() - started, 1)}}
print("PROBE " + json.dumps(report))
"""


def probe_pod(
    deployment: Deployment, name: str, *, await_closed: tuple[str, ...] = (), component: str = "worker"
) -> dict[str, Any]:
    """The KubernetesExecutor's pod template (its labels, ServiceAccount and Git clone) running the probe instead
    of a task, labelled as ``component``; its report."""
    cluster = deployment.cluster
    [text] = cluster.get("configmap", f"{FULLNAME}-pod-template")["data"].values()
    pod = yaml.safe_load(text)
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"]["app.kubernetes.io/component"] = component
    [base] = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    base.pop("args", None)
    base["command"] = ["python", "-c", PROBE]
    base.setdefault("env", []).append({"name": "PROBE_AWAIT_CLOSED", "value": json.dumps(list(await_closed))})
    cluster.kubectl("delete", "pod", name, "--ignore-not-found", "--wait")
    cluster.kubectl("apply", "--filename", "-", input=json.dumps(pod))
    try:
        phase = wait_for(
            f"probe pod {name} to finish",
            lambda: (
                cluster.get("pod", name)["status"].get("phase") in ("Succeeded", "Failed")
                and cluster.get("pod", name)["status"]["phase"]
            ),
            timeout=PROBE_BOUND_S,
            interval=1,
        )
        log = cluster.kubectl("logs", f"pod/{name}", "--container", "base").stdout
        assert phase == "Succeeded", f"probe pod {name} {phase}:\n{log[-3000:]}"
        [line] = [line for line in log.splitlines() if line.startswith("PROBE ")]
        return json.loads(line.removeprefix("PROBE "))
    finally:
        cluster.kubectl("delete", "pod", name, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="module")
def open_probe(deployment: Deployment) -> dict[str, Any]:
    """Before the fence: the same probe, policies off."""
    return probe_pod(deployment, "netprobe-open")


@pytest.fixture(scope="module")
def fenced(deployment: Deployment, open_probe: dict[str, Any]) -> Iterator[Api]:
    """The release with networkPolicies on (the chart's defaults: the local cluster's CoreDNS, a process on the
    node, answers on port 53 like kube-dns pods would); an API client through a port-forward of its own."""
    cluster = deployment.cluster
    try:
        deployment.upgrade("--set", "networkPolicies.enabled=true")
        with cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
            yield deployment.api(port)
    finally:
        deployment.upgrade()


def test_the_probe_reaches_everything_before_the_fence(open_probe: dict[str, Any]) -> None:
    """The control: without policies, the probe's connections to PostgreSQL and the Kubernetes API succeed."""
    assert all(open_probe["needed"].values()), open_probe
    assert all(target["open"] for target in open_probe["fenced"].values()), open_probe


def test_the_chart_looked_up_the_kubernetes_api_address(deployment: Deployment, fenced: Api) -> None:
    policy = deployment.cluster.get("networkpolicy", f"{FULLNAME}-worker")["spec"]
    assert {"to": [{"ipBlock": {"cidr": f"{NODE_IP}/32"}}], "ports": [{"port": APISERVER_PORT, "protocol": "TCP"}]} in (
        policy["egress"]
    )


def test_a_run_is_green_behind_the_fence(fenced: Api) -> None:
    """XComs and logs in Azurite, the Execution API, the init container's clone from the Git server."""
    run_dag(fenced, "example_dataframe_pipeline", timeout=RUN_BOUND_S, interval=1)


def test_a_pod_operator_step_is_green_behind_the_fence(fenced: Api) -> None:
    """The task pod reaches the Kubernetes API at the address the chart looked up."""
    run_dag(fenced, "example_pod_operator", timeout=RUN_BOUND_S, interval=1)


def closed_targets(report: dict[str, Any]) -> set[str]:
    print(f"fenced after (s): {json.dumps({n: t['after_s'] for n, t in report['fenced'].items()})}")
    assert report["needed"] == {"execution-api": True, "azurite": True}, report
    return {name for name, target in report["fenced"].items() if not target["open"]}


def test_a_task_pod_cannot_connect_to_postgresql_or_the_kubelet(deployment: Deployment, fenced: Api) -> None:
    """The pod operator is on in the profile: its task pods reach the Kubernetes API (and nothing else on the node)."""
    awaited = tuple(name for name in FENCED if name not in KUBERNETES_API)
    report = probe_pod(deployment, "netprobe-fenced", await_closed=awaited)
    assert closed_targets(report) == {"postgresql", "kubelet"}, report


def test_a_pod_without_the_db_url_is_kept_from_postgresql_by_its_ingress_policy(
    deployment: Deployment, fenced: Api
) -> None:
    """create-containers pods have no egress policy: PostgreSQL's own ingress policy is what refuses them."""
    report = probe_pod(deployment, "netprobe-nodb", await_closed=("postgresql",), component="create-containers")
    assert report["fenced"]["postgresql"]["open"] is False, report
    assert report["fenced"]["kubernetes-apiserver"]["open"] is True, report  # no egress fence on this pod


@pytest.fixture(scope="module")
def fenced_without_pod_operator(deployment: Deployment, fenced: Api) -> None:
    """The same release with workers.podOperator off (the module's teardown, through `fenced`, restores it)."""
    deployment.upgrade("--set", "networkPolicies.enabled=true", "--set", "workers.podOperator.enabled=false")


def test_without_the_pod_operator_a_task_pod_cannot_connect_to_the_kubernetes_api_either(
    deployment: Deployment, fenced_without_pod_operator: None
) -> None:
    policy = deployment.cluster.get("networkpolicy", f"{FULLNAME}-worker")["spec"]
    assert not any(
        peer.get("ipBlock", {}).get("cidr") == f"{NODE_IP}/32"
        for rule in policy["egress"]
        for peer in rule.get("to", [])
    )
    report = probe_pod(deployment, "netprobe-nopodop", await_closed=tuple(FENCED))
    assert closed_targets(report) == set(FENCED), report
