"""Faults on the local cluster while a DAG run is in flight, each ending in success with nothing lost:

* a worker pod deleted while its task runs: the try fails at once, the task is retried in a new pod and succeeds,
  and both attempts' logs can be read through the api-server;
* the scheduler pod deleted: the Deployment starts a new scheduler, which adopts the running worker pod; the run
  completes and no task ran twice;
* Azurite restarted between an XCom push and its pull (the chart's defaults): the DataFrame is still there, the
  downstream task reads it, and the XCom and log containers exist without a `helm upgrade`;
* PostgreSQL restarted: scheduler and api-server carry on and the run completes.

tests/cluster/dags/cluster_fault_dag.py is pushed to the in-cluster Git server first. Its ``gate`` task holds the
run between the push (``produce``) and the pull (``consume``) until the test releases it through an Airflow
Variable, so each fault lands while a task is running, never by timing. docs/reliability.md reports the results.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

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
from scripts.devcluster.podwatch import EXECUTOR_SELECTOR, PodWatch
from scripts.devstack.services import azurite_connection_string
from tests.cluster.conftest import Deployment
from tests.support.cluster import NAMESPACE, RELEASE
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="module")
def api(deployment: Deployment) -> Iterator[Api]:
    """An api-server port-forward of this module's own: no fault here restarts the api-server, but if one did, the
    later modules' forward would not be the broken one."""
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        yield deployment.api(port)


@pytest.fixture(scope="module")
def fault_dag(deployment: Deployment, api: Api, tmp_path_factory: pytest.TempPathFactory) -> str:
    deployment.push_and_register(api, tmp_path_factory.mktemp("faults"), FAULT_DAG, DAG_ID, timeout=REGISTERED_BOUND_S)
    release(api, "nothing yet")
    return DAG_ID


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


def component_pods(deployment: Deployment, component: str) -> dict[str, str]:
    """uid -> name of the component's pods (a StatefulSet's replacement pod keeps the name, not the uid)."""
    selector = f"app.kubernetes.io/component={component},app.kubernetes.io/instance={RELEASE}"
    items = deployment.cluster.get("pods", "--selector", selector)["items"]
    return {pod["metadata"]["uid"]: pod["metadata"]["name"] for pod in items}


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
        gone = lambda: not component_pods(deployment, component)  # noqa: E731
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


def test_a_worker_pod_deleted_mid_task_is_retried_and_the_retry_succeeds(
    deployment: Deployment, api: Api, fault_dag: str
) -> None:
    """Both attempts' logs are read from Blob: the pod's SIGTERM fails attempt 1 at once (the image's
    include/plugins/task_termination.py), so its supervisor uploads the log before the pod goes. Without the plugin,
    Airflow 3.3.2 only calls on_kill() and the task runs on until the grace period's SIGKILL, log lost."""
    run_id, pod = start_gated_run(deployment, api, "first-attempt")
    deployment.cluster.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")

    assert finish(deployment, api, run_id) == {**EVERY_TASK_ONCE, "gate": ("success", 2)}
    first = log_text(api, run_id, "gate", 1)
    assert "gate: attempt 1 holds (first-attempt)" in first
    assert "TaskTerminated" in first
    assert "received SIGTERM" in first
    assert "gate: attempt 2 passed" in log_text(api, run_id, "gate", 2)


def test_the_scheduler_deleted_mid_run_is_replaced_and_the_run_completes_with_no_task_run_twice(
    deployment: Deployment, api: Api, fault_dag: str
) -> None:
    with PodWatch(deployment.cluster.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        run_id, _ = start_gated_run(deployment, api, "until-released")
        restart(deployment, "scheduler")
        release(api, run_id)
        states = finish(deployment, api, run_id)
        pods = [p for p in watch.pods().values() if p.spec["metadata"]["annotations"].get("run_id") == run_id]

    assert states == EVERY_TASK_ONCE
    assert sorted(pod.task_id for pod in pods) == ["consume", "gate", "produce"]  # one worker pod each: none ran twice


def test_azurite_restarted_between_push_and_pull_keeps_the_xcom_and_the_containers(
    deployment: Deployment, api: Api, fault_dag: str
) -> None:
    run_id, _ = start_gated_run(deployment, api, "until-released")
    restart(deployment, "azurite")
    with deployment.cluster.port_forward(f"{FULLNAME}-azurite", 10000) as port:
        blobs = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", port))
        assert {"airflow-xcom", "airflow-logs"} <= {c.name for c in blobs.list_containers()}
        pushed = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/produce/xcomEntries/return_value")
        container, name = parse_uri(pushed["value"]["uri"])
        assert blobs.get_blob_client(container, name).exists(), f"the pushed XCom blob {name} did not survive"

    release(api, run_id)
    assert finish(deployment, api, run_id) == EVERY_TASK_ONCE
    assert "gate: attempt 1 passed" in log_text(api, run_id, "gate", 1)


def test_postgresql_restarted_mid_run_and_the_run_completes(deployment: Deployment, api: Api, fault_dag: str) -> None:
    run_id, _ = start_gated_run(deployment, api, "until-released")
    restart(deployment, "postgresql")
    wait_for("the api-server to reach the new PostgreSQL", lambda: answers(api), timeout=ROLLOUT_BOUND_S, interval=1)
    release(api, run_id)
    assert finish(deployment, api, run_id) == EVERY_TASK_ONCE
    for component in ("scheduler", "api-server", "dag-processor", "triggerer"):
        deployment.cluster.kubectl("rollout", "status", f"deployment/{FULLNAME}-{component}", "--timeout=300s")


def test_azurite_stopped_during_a_push_fails_the_try_naming_the_storage_and_the_retry_succeeds(
    deployment: Deployment, api: Api, fault_dag: str, tmp_path: Path
) -> None:
    """Storage is down for the push and for the end of the try. The push fails naming the blob and the connection,
    only that try fails, its supervisor says it could not upload the log (in the pod's output, the one place left),
    and once Azurite is back the retry pushes and the run succeeds. The failed push committed nothing: the run has
    one blob for produce, the one its XCom row references."""
    run_id = trigger_dag(api, DAG_ID, {"hold_push": True})
    wait_until_holding(api, f"{run_id} push 1")
    first = task_pod(deployment, run_id, "produce", 1)
    assert first is not None, "the holding produce has no Running worker pod"
    try:
        with deployment.cluster.follow_logs(first["metadata"]["name"], tmp_path / "produce-1.log") as ended:
            scale(deployment, "azurite", 0)
            release(api, f"{run_id} push 1")
            output = ended(RUN_BOUND_S)
    finally:
        scale(deployment, "azurite", 1)
    wait_until_holding(api, f"{run_id} push 2")
    release(api, f"{run_id} push 2")

    assert finish(deployment, api, run_id) == {**EVERY_TASK_ONCE, "produce": ("success", 2)}
    tries = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/produce/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    assert "Could not write logs to" in output, output[-3000:]
    container, name = pushed_blob(api, run_id)
    with deployment.cluster.port_forward(f"{FULLNAME}-azurite", 10000) as port:
        blobs = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", port))
        folder = name.rsplit("/", 1)[0] + "/"
        assert [b.name for b in blobs.get_container_client(container).list_blobs(name_starts_with=folder)] == [name]


@pytest.mark.parametrize("tamper", ["deleted", "altered"])
def test_a_pushed_blob_deleted_or_altered_before_the_pull_fails_the_run_naming_the_blob(
    deployment: Deployment, api: Api, fault_dag: str, tamper: str
) -> None:
    run_id, _ = start_gated_run(deployment, api, "until-released")
    container, name = pushed_blob(api, run_id)
    with deployment.cluster.port_forward(f"{FULLNAME}-azurite", 10000) as port:
        blobs = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", port))
        blob = blobs.get_blob_client(container, name)
        if tamper == "deleted":
            blob.delete_blob()
        else:  # one byte flipped in the middle, the size and the blob's metadata kept
            data = bytearray(blob.download_blob().readall())
            data[len(data) // 2] ^= 0xFF
            blob.upload_blob(bytes(data), overwrite=True, metadata=blob.get_blob_properties().metadata)
    release(api, run_id)

    assert settle(deployment, api, run_id) == "failed"
    tasks = task_instances(api, DAG_ID, run_id)
    assert (tasks["consume"]["state"], tasks["consume"]["try_number"]) == ("failed", 2)  # retried, failed again
    log = log_text(api, run_id, "consume", 2)
    assert f"xcom_wasb://{container}/{name}" in log
    assert ("does not exist" if tamper == "deleted" else "is corrupt or was modified") in log


def test_the_dag_processor_restarted_keeps_every_dag_registered_and_active(
    deployment: Deployment, api: Api, fault_dag: str
) -> None:
    """While the new dag-processor fetches its bundle (GitDagBundle here; in git-sync mode the chart's one-shot
    init container syncs before Airflow starts), no DAG disappears or is marked stale."""
    active = lambda: {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"] if not d["is_stale"]}  # noqa: E731
    before = active()
    assert DAG_ID in before
    missing: list[set[str]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(ApiError):
                if gone := before - active():
                    missing.append(gone)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        restarted_at = api.call("GET", f"/api/v2/dags/{DAG_ID}/details")["last_parsed_time"]
        restart(deployment, "dag-processor")

        def parsed_again() -> bool:  # the new dag-processor has parsed the DAG files once
            return api.call("GET", f"/api/v2/dags/{DAG_ID}/details")["last_parsed_time"] != restarted_at

        wait_for("the new dag-processor to parse the DAGs", parsed_again, timeout=REGISTERED_BOUND_S, interval=1)
        wait_for_parse_cycle = active()
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert not missing, f"DAGs missing or stale during the restart: {missing}"
    assert wait_for_parse_cycle == before
