"""networkPolicies.enabled on a cluster that enforces them. The local cluster runs kube-network-policies on its node
(scripts/localcluster/cluster.py; scripts/bootstrap builds it, patched) and scripts/localcluster/values.yaml switches
the chart's policies on, so the whole cluster suite runs under them. Here a task probes the fence from inside its
KubernetesExecutor pod (tests/cluster/dags/cluster_egress_probe_dag.py): it runs green and reaches what a task needs
(the Execution API, Blob storage, DNS), but neither the metadata DB nor the kubelet; the Kubernetes API only while
workers.podOperator is on (the profile's choice: the steps' pods are made through it), and not once the release is
upgraded with it off. The scheduler, which the DB's policy admits and no egress policy fences, reaches every one of
these addresses: what stops the task is the policy, not the address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.airflow_api import Api, run_dag, run_path
from scripts.localcluster.cluster import APISERVER_PORT, NODE_IP
from tests.cluster.conftest import Deployment
from tests.support.cluster import PROFILES
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
PROBE_DAG = Path(__file__).parent / "dags" / "cluster_egress_probe_dag.py"
DAG_ID = "cluster_egress_probe"
REGISTERED_BOUND_S = 120
RUN_BOUND_S = 300
TARGETS = {  # name -> [host, port], as a task would name them
    "execution API": [f"{FULLNAME}-api-server", 8080],
    "Blob storage": [f"{FULLNAME}-azurite", 10000],
    "metadata DB": [f"{FULLNAME}-postgresql", 5432],
    "kubelet": [NODE_IP, 10250],
    "Kubernetes API": ["kubernetes.default.svc", 443],
}
NEEDED = {"execution API": "connected", "Blob storage": "connected"}
FENCED = {"metadata DB": "timed out", "kubelet": "timed out"}


def test_the_profiles_kubernetes_api_is_where_the_kubernetes_service_forwards(deployment: Deployment) -> None:
    """scripts/localcluster/values.yaml names the apiserver's address for the task pods' egress (so that an offline
    render works): the kubernetes Service's endpoints, which the chart would have looked up."""
    values = yaml.safe_load(PROFILES[-1].read_text())["networkPolicies"]["workerEgress"]["kubernetesApi"]
    (endpoints,) = deployment.cluster.get("endpointslices", "--namespace", "default", "--selector",
                                          "kubernetes.io/service-name=kubernetes")["items"]  # fmt: skip
    forwarded = [
        {"cidr": f"{address}/32", "port": port["port"]}
        for endpoint in endpoints["endpoints"]
        for address in endpoint["addresses"]
        for port in endpoints["ports"]
    ]
    assert values == forwarded == [{"cidr": f"{NODE_IP}/32", "port": APISERVER_PORT}]


def probe_from_a_task(api: Api) -> dict[str, str]:
    run_id = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1, conf={"targets": TARGETS})
    return api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/probe/xcomEntries/return_value")["value"]


@pytest.fixture(scope="module")
def registered(deployment: Deployment, api: Api, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("egress-probe")
    deployment.push_and_register(api, workdir, PROBE_DAG, DAG_ID, timeout=REGISTERED_BOUND_S)


def test_the_scheduler_reaches_every_address_the_task_is_fenced_from(deployment: Deployment) -> None:
    """The control: no egress policy selects the scheduler, and the DB's admits it."""
    done = deployment.cluster.kubectl(
        "exec", "-i", f"deployment/{FULLNAME}-scheduler", "--", "python", "-", json.dumps(TARGETS),
        input=PROBE_DAG.read_text(), timeout=60,
    )  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1]) == dict.fromkeys(TARGETS, "connected")


def test_a_task_reaches_what_it_needs_and_the_kubernetes_api_for_its_steps_but_not_the_db(
    registered: None, api: Api
) -> None:
    assert probe_from_a_task(api) == {**NEEDED, **FENCED, "Kubernetes API": "connected"}


@pytest.fixture(scope="module")
def without_pod_operator(deployment: Deployment, registered: None) -> Iterator[Api]:
    """The release upgraded with workers.podOperator off (the scheduler rolls: the task pods' template changes), and
    an API client through a port-forward of its own; upgraded back afterwards."""
    try:
        deployment.upgrade("--set", "workers.podOperator.enabled=false")
        with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
            yield deployment.api(port)
    finally:
        deployment.upgrade()


def test_without_the_pod_operator_a_task_cannot_reach_the_kubernetes_api(without_pod_operator: Api) -> None:
    assert probe_from_a_task(without_pod_operator) == {**NEEDED, **FENCED, "Kubernetes API": "timed out"}
