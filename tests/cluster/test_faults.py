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
Variable (tests/cluster/gated.py), so each fault lands while a task is running, never by timing. docs/reliability.md
reports the results.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import parse_uri
from scripts.airflow_api import Api, ApiError, run_path, task_instances, trigger_dag, wait_for
from scripts.devstack.services import azurite_connection_string
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodWatch
from tests.cluster.conftest import Deployment
from tests.cluster.gated import (
    DAG_ID,
    EVERY_TASK_ONCE,
    FAULT_DAG,
    REGISTERED_BOUND_S,
    ROLLOUT_BOUND_S,
    RUN_BOUND_S,
    answers,
    finish,
    log_text,
    pushed_blob,
    release,
    restart,
    scale,
    settle,
    start_gated_run,
    task_pod,
    wait_until_holding,
)
from tests.support.cluster import NAMESPACE
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow


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
    """While the new dag-processor starts (the chart's one-shot git-sync init container clones before Airflow
    starts, so it never parses an empty folder), no DAG disappears or is marked stale."""
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
