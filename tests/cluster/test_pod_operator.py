"""KubernetesPodOperator on the local cluster (dags/example_pod_operator.py, `workers.podOperator` in the kind
profile): the crunch step runs in a pod of its own with its own resources, in the step namespace apart from the
release's, its result comes back through the XCom sidecar (the Airflow image standing in for alpine), and the pod is
deleted when the step ends. The tasks' ServiceAccount may manage pods there and nowhere else (the apiserver's own
answer), and the step namespace refuses a privileged pod (Pod Security admission, restricted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import yaml

from scripts.airflow_api import Api, run_dag, run_path
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodLife, PodWatch
from tests.cluster.conftest import Deployment
from tests.support.cluster import NAMESPACE, PROFILES
from tests.support.helm import FULLNAME, all_containers

pytestmark = pytest.mark.slow
DAG_ID = "example_pod_operator"
SELECTOR = f"app.kubernetes.io/part-of={DAG_ID}"  # the labels the DAG gives its step's pod
WORKERS = f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}"  # the KubernetesExecutor's pods for crunch and report
RUN_BOUND_S = 600
POD_GONE_BOUND_S = 180
N = 1000  # the DAG's default param
STEPS = yaml.safe_load(PROFILES[0].read_text())["workers"]["podOperator"]["namespace"]
TASKS_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}-worker"


@dataclass
class Run:
    run_id: str
    states: dict[str, str]
    pod: PodLife


@pytest.fixture(scope="module")
def pod_run(deployment: Deployment, api: Api) -> Run:
    kubeconfig = deployment.cluster.kubeconfig
    with PodWatch(kubeconfig, STEPS, SELECTOR) as watch, PodWatch(kubeconfig, NAMESPACE, WORKERS) as workers:
        run_id = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
        (pod,) = watch.wait_until_gone(count=1, timeout=POD_GONE_BOUND_S).values()
        workers.wait_until_gone(count=2, timeout=POD_GONE_BOUND_S)  # none left behind for the next module
    tis = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances")["task_instances"]
    return Run(run_id, {ti["task_id"]: ti["state"] for ti in tis}, pod)


def test_the_step_runs_in_a_pod_of_its_own_and_its_result_comes_back(pod_run: Run, api: Api) -> None:
    assert pod_run.states == {"crunch": "success", "report": "success"}
    path = f"{run_path(DAG_ID, pod_run.run_id)}/taskInstances"
    crunched = api.call("GET", f"{path}/crunch/xcomEntries/return_value")["value"]
    assert crunched["pod"] == pod_run.pod.name
    reported = api.call("GET", f"{path}/report/xcomEntries/return_value")["value"]
    assert reported == {"n": N, "sum": N * (N + 1) * (2 * N + 1) // 6}
    log = api.call("GET", f"{path}/crunch/logs/1?full_content=true")
    assert "crunched" in str(log["content"])  # the pod's output, streamed into the task's log


def test_the_pod_has_its_own_resources_a_restricted_context_and_the_airflow_image_as_xcom_sidecar(
    pod_run: Run, deployment: Deployment
) -> None:
    spec = pod_run.pod.spec["spec"]
    containers = {c["name"]: c for c in all_containers(spec)}
    assert set(containers) == {"base", "airflow-xcom-sidecar"}
    assert containers["base"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    scheduler = deployment.cluster.get("deployment", "--selector", "app.kubernetes.io/component=scheduler")["items"][0]
    airflow_image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    assert containers["base"]["image"] == containers["airflow-xcom-sidecar"]["image"] == airflow_image
    for container in containers.values():
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_the_pod_is_deleted_when_the_step_ends(pod_run: Run, deployment: Deployment) -> None:
    assert pod_run.pod.deleted is not None
    assert not deployment.cluster.get("pods", "--selector", SELECTOR, "--namespace", STEPS)["items"]


def can(deployment: Deployment, verb: str, resource: str, namespace: str) -> bool:
    """The apiserver's answer (a SubjectAccessReview) for the ServiceAccount tasks run as."""
    argv = ("auth", "can-i", verb, resource, "--as", TASKS_ACCOUNT, "--namespace", namespace)
    return deployment.cluster.kubectl(*argv, check=False).stdout.strip() == "yes"


def test_tasks_manage_pods_in_the_step_namespace_and_nowhere_else(deployment: Deployment) -> None:
    assert can(deployment, "create", "pods", STEPS)
    assert can(deployment, "create", "pods/exec", STEPS)
    for verb, resource in (("create", "pods"), ("create", "pods/exec"), ("get", "secrets"), ("list", "pods")):
        assert not can(deployment, verb, resource, NAMESPACE), f"{verb} {resource} in {NAMESPACE}"
    assert not can(deployment, "get", "secrets", STEPS)


def test_the_step_namespace_refuses_a_privileged_pod(deployment: Deployment) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-step"},
        "spec": {"containers": [{"name": "c", "image": "any", "securityContext": {"privileged": True}}]},
    }
    argv = ("apply", "--dry-run=server", "--namespace", STEPS, "--filename", "-")
    done = deployment.cluster.kubectl(*argv, check=False, input=json.dumps(pod))
    assert done.returncode != 0, done.stdout
    assert 'violates PodSecurity "restricted:latest"' in done.stderr, done.stderr
