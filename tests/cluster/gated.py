"""A DAG run held at a known point on the local cluster, so a test lands its fault (or its rollout) while a task runs,
never by timing: tests/cluster/dags/cluster_fault_dag.py's ``gate`` holds the run between the push (``produce``) and
the pull (``consume``) until the test releases it through an Airflow Variable. Shared by test_faults.py and
test_production_surface.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from include.azblob_xcom_backend import parse_uri
from scripts.airflow_api import (
    Api,
    ApiError,
    NotFound,
    TimedOut,
    run_path,
    task_instances,
    trigger_dag,
    wait_for,
    wait_for_run,
)
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR
from tests.cluster.conftest import Deployment
from tests.support.cluster import RELEASE
from tests.support.helm import FULLNAME

FAULT_DAG = Path(__file__).parent / "dags" / "cluster_fault_dag.py"
DAG_ID = "cluster_fault_dag"
RELEASE_VARIABLE = "cluster_fault_release"  # the DAG's gate waits until it holds the run id
HOLDING_VARIABLE = "cluster_fault_holding"  # what a waiting task waits for
ROWS = 100_000
REGISTERED_BOUND_S = 120
RUNNING_BOUND_S = 300
RUN_BOUND_S = 600
ROLLOUT_BOUND_S = 300
EVERY_TASK_ONCE = {"produce": ("success", 1), "gate": ("success", 1), "consume": ("success", 1)}


def variable(api: Api, key: str) -> str | None:
    try:
        return api.call("GET", f"/api/v2/variables/{key}")["value"]
    except NotFound:
        return None


def wait_until_holding(api: Api, release_value: str) -> None:
    """Wait until a task runs its code and waits for ``release_value`` (it says so in the holding Variable)."""
    holding = lambda: variable(api, HOLDING_VARIABLE) == release_value  # noqa: E731
    wait_for(f"a task to wait for {release_value!r}", holding, timeout=RUNNING_BOUND_S, interval=1)


def release(api: Api, run_id: str) -> None:
    """Let what waits for ``run_id`` (the gate of that run, or a push: "<run id> push <attempt>") pass."""
    body = {"key": RELEASE_VARIABLE, "value": run_id}
    try:
        api.call("PATCH", f"/api/v2/variables/{RELEASE_VARIABLE}", body)
    except NotFound:
        api.call("POST", "/api/v2/variables", body)


def task_pod(deployment: Deployment, run_id: str, task_id: str, attempt: int) -> dict[str, Any] | None:
    """The Running worker pod of that attempt of the task, else None."""
    selector = f"{EXECUTOR_SELECTOR},dag_id={DAG_ID},task_id={task_id},try_number={attempt}"
    for pod in deployment.cluster.get("pods", "--selector", selector)["items"]:
        if pod["metadata"].get("annotations", {}).get("run_id") == run_id and pod["status"]["phase"] == "Running":
            return pod
    return None


def start_gated_run(deployment: Deployment, api: Api, hold: str) -> tuple[str, dict[str, Any]]:
    """Trigger a run and wait until ``produce`` pushed its DataFrame and ``gate`` holds in its worker pod."""
    run_id = trigger_dag(api, DAG_ID, {"hold": hold})
    wait_until_holding(api, run_id)
    assert task_instances(api, DAG_ID, run_id)["produce"]["state"] == "success"
    pod = task_pod(deployment, run_id, "gate", attempt=1)
    assert pod is not None, "the holding gate has no Running worker pod"
    return run_id, pod


def settle(deployment: Deployment, api: Api, run_id: str) -> str:
    """Wait for the run to finish and its worker pods to be gone; the run's state."""
    state = wait_for_run(api, DAG_ID, run_id, timeout=RUN_BOUND_S, interval=1)
    try:
        wait_for(f"the worker pods of {run_id} to be deleted", lambda: not worker_pods_left(deployment, run_id),
                 timeout=RUN_BOUND_S, interval=1)  # fmt: skip
    except TimedOut:
        raise AssertionError(f"worker pods left after run {run_id}: {worker_pods_left(deployment, run_id)}") from None
    return state


def finish(deployment: Deployment, api: Api, run_id: str) -> dict[str, tuple[str, int]]:
    """Wait for the run to succeed and its worker pods to be gone; task_id -> (state, try_number); the pulled
    DataFrame arrived whole."""
    assert settle(deployment, api, run_id) == "success"
    consumed = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/consume/xcomEntries/return_value")
    assert consumed["value"] == ROWS
    return {task: (ti["state"], ti["try_number"]) for task, ti in task_instances(api, DAG_ID, run_id).items()}


def worker_pods_left(deployment: Deployment, run_id: str) -> list[str]:
    """The run's worker pods still in the cluster, as "task try phase" (succeeded pods are deleted; failed ones kept
    for inspection, [kubernetes_executor] delete_worker_pods_on_failure = False)."""
    pods = deployment.cluster.get("pods", "--selector", f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}")["items"]
    return [
        f"{pod['metadata']['labels'].get('task_id')} try {pod['metadata']['labels'].get('try_number')} "
        f"{pod['status'].get('phase')}"
        for pod in pods
        if pod["metadata"].get("annotations", {}).get("run_id") == run_id
    ]


def log_text(api: Api, run_id: str, task_id: str, attempt: int) -> str:
    path = f"{run_path(DAG_ID, run_id)}/taskInstances/{task_id}/logs/{attempt}?full_content=true"
    return json.dumps(api.call("GET", path)["content"])


def answers(api: Api) -> bool:
    """Whether the api-server answers a DB-backed request (its pooled connections may be stale for a moment)."""
    try:
        return api.dag_exists(DAG_ID)
    except ApiError:
        return False


def component_pods(deployment: Deployment, component: str, *, terminating: bool = False) -> dict[str, str]:
    """uid -> name of the component's pods (a StatefulSet's replacement pod keeps the name, not the uid), without
    those on their way out unless ``terminating`` (`helm upgrade --wait` returns once the new pods are Ready, while
    the replaced ones may still be stopping)."""
    selector = f"app.kubernetes.io/component={component},app.kubernetes.io/instance={RELEASE}"
    items = deployment.cluster.get("pods", "--selector", selector)["items"]
    return {
        pod["metadata"]["uid"]: pod["metadata"]["name"]
        for pod in items
        if terminating or not pod["metadata"].get("deletionTimestamp")
    }


def pushed_blob(api: Api, run_id: str) -> tuple[str, str]:
    """(container, blob name) of the DataFrame ``produce`` pushed in that run."""
    pushed = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/produce/xcomEntries/return_value")
    return parse_uri(pushed["value"]["uri"])


def scale(deployment: Deployment, component: str, replicas: int) -> None:
    """Scale the component's Deployment; wait until its pods are gone (0) or it is rolled out and Ready."""
    name = f"deployment/{FULLNAME}-{component}"
    deployment.cluster.kubectl("scale", name, f"--replicas={replicas}")
    if replicas:
        deployment.cluster.kubectl("rollout", "status", name, f"--timeout={ROLLOUT_BOUND_S}s", timeout=ROLLOUT_BOUND_S)
    else:
        gone = lambda: not component_pods(deployment, component, terminating=True)  # noqa: E731
        wait_for(f"the {component} pods to be gone", gone, timeout=ROLLOUT_BOUND_S, interval=1)


def restart(deployment: Deployment, component: str) -> None:
    """Delete the component's pods; wait until its controller has started new ones (new uids) and they are Ready."""
    before = component_pods(deployment, component)
    deployment.cluster.kubectl("delete", "pod", *before.values(), "--wait=true", timeout=ROLLOUT_BOUND_S)

    def replaced() -> dict[str, str] | None:
        pods = component_pods(deployment, component)
        return pods if pods and not pods.keys() & before.keys() else None

    after = wait_for(f"new {component} pods", replaced, timeout=ROLLOUT_BOUND_S, interval=1)
    ready = [f"pod/{name}" for name in after.values()]
    deployment.cluster.kubectl(
        "wait", "--for=condition=Ready", *ready, f"--timeout={ROLLOUT_BOUND_S}s", timeout=ROLLOUT_BOUND_S + 20
    )
