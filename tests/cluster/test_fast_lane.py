"""executor: KubernetesExecutor,LocalExecutor on the local cluster: pods by default, and a fast lane in the scheduler.

The release is upgraded to both executors; the dag-processor re-parses example_dataframe_pipeline, whose tiny
transform and load now ask for the LocalExecutor (include/lanes.py) while extract keeps the default. The run
succeeds with extract in a worker pod of its own and transform and load as subprocesses of the scheduler pod (no pod
created for them), each task instance recording the executor it asked for; the fast lane's logs reach Blob like
the pods' and the api-server serves them. The teardown upgrades back and waits until the DAG is parsed without the
fast lane again, so the modules after this one find the release as the profiles make it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from azure.storage.blob import BlobServiceClient

from scripts.airflow_api import Api, run_dag, run_path, wait_for, wait_reparsed
from scripts.devstack.services import azurite_connection_string
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodLife, PodWatch
from tests.cluster.conftest import Deployment
from tests.cluster.gated import component_pods
from tests.support.cluster import NAMESPACE
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
FAST_LANE = "KubernetesExecutor,LocalExecutor"
REPARSED_BOUND_S = 180
RUN_BOUND_S = 600
POD_GONE_BOUND_S = 180
LOG_UPLOAD_BOUND_S = 60


@dataclass
class LaneRun:
    run_id: str
    seconds: float  # trigger -> success
    tasks: dict[str, dict]  # task_id -> task instance (REST)
    pods: dict[str, PodLife]  # the run's worker pods
    scheduler_ip: str


def reparsed(deployment: Deployment, api: Api) -> None:
    """Wait until the DAG was parsed by the upgraded release's dag-processor: its tasks' executors are part of the
    serialized DAG."""

    def previous_gone() -> bool:
        return component_pods(deployment, "dag-processor", terminating=True) == component_pods(
            deployment, "dag-processor"
        )

    wait_reparsed(api, DAG_ID, previous_gone=previous_gone, timeout=REPARSED_BOUND_S)


@pytest.fixture(scope="module")
def fast_lane(deployment: Deployment) -> Iterator[Api]:
    """The release with both executors, and an API client through a port-forward opened after the upgrade (the
    airflow.cfg change replaces the api-server pods the module's one reached)."""
    try:
        deployment.upgrade("--set-json", f"executor={json.dumps(FAST_LANE)}")
        with settled(deployment) as api:
            yield api
    finally:
        deployment.upgrade()
        with settled(deployment):
            pass


@contextmanager
def settled(deployment: Deployment) -> Iterator[Api]:
    """After an upgrade: the api-server's new pods alone behind its Service, a client through a port-forward opened
    then (the module's reached a pod the upgrade replaced), and the DAG parsed under the new config."""
    wait_for("the api-server's new pods alone", lambda: deployment.api_servers_settled(1), timeout=300)
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        api = deployment.api(port)
        reparsed(deployment, api)
        yield api


@pytest.fixture(scope="module")
def lane_run(deployment: Deployment, fast_lane: Api) -> LaneRun:
    [scheduler] = component_pods(deployment, "scheduler").values()
    scheduler_ip = deployment.cluster.get(f"pod/{scheduler}")["status"]["podIP"]
    with PodWatch(deployment.cluster.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        started = time.monotonic()
        run_id = run_dag(fast_lane, DAG_ID, timeout=RUN_BOUND_S, interval=1)
        seconds = time.monotonic() - started
        path = f"{run_path(DAG_ID, run_id)}/taskInstances"
        tasks = {ti["task_id"]: ti for ti in fast_lane.call("GET", path)["task_instances"]}
        pods = watch.wait_until_gone(count=1, timeout=POD_GONE_BOUND_S)
    print(f"\n{DAG_ID} with transform and load in the fast lane: trigger -> success in {seconds:.1f} s")
    return LaneRun(run_id, seconds, tasks, pods, scheduler_ip)


def test_the_release_runs_both_executors(deployment: Deployment, fast_lane: Api) -> None:
    config = deployment.cluster.get("configmap", f"{FULLNAME}-config")["data"]["airflow.cfg"]
    assert f"executor = {FAST_LANE}" in config
    assert "delete_local_logs = False" in config  # the scheduler's tasks share its log folder


def test_each_task_runs_on_the_executor_it_asked_for(lane_run: LaneRun) -> None:
    assert {task: ti["state"] for task, ti in lane_run.tasks.items()} == dict.fromkeys(
        ("extract", "transform", "load"), "success"
    )
    assert {task: ti["executor"] for task, ti in lane_run.tasks.items()} == {
        "extract": None,  # the default: KubernetesExecutor
        "transform": "LocalExecutor",
        "load": "LocalExecutor",
    }
    assert [pod.task_id for pod in lane_run.pods.values()] == ["extract"]
    assert lane_run.tasks["extract"]["hostname"] != lane_run.scheduler_ip
    assert lane_run.tasks["transform"]["hostname"] == lane_run.tasks["load"]["hostname"] == lane_run.scheduler_ip


def test_the_fast_lanes_logs_are_in_blob_and_served_like_the_pods(
    deployment: Deployment, lane_run: LaneRun, fast_lane: Api
) -> None:
    prefix = f"logs/dag_id={DAG_ID}/run_id={lane_run.run_id}/"
    expected_names = {f"task_id={task}/attempt=1.log" for task in lane_run.tasks}
    with deployment.cluster.port_forward(f"{FULLNAME}-azurite", 10000) as port:  # the folder's may be stale
        blobs = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", port))
        logs = blobs.get_container_client("airflow-logs")

        def uploaded() -> bool:
            names = {blob.name.removeprefix(prefix) for blob in logs.list_blobs(name_starts_with=prefix)}
            return names >= expected_names

        # The supervisor uploads a task's log after it reported the final state (the run can be a success a moment
        # before load's log is in Blob); a worker pod's upload is over once the pod is gone, a subprocess's is not.
        wait_for("the run's task logs in Blob", uploaded, timeout=LOG_UPLOAD_BOUND_S, interval=0.5)
    for task, expected in (("extract", "Stored XCom 'return_value' (pandas.DataFrame"), ("load", "city-hour rows")):
        path = f"{run_path(DAG_ID, lane_run.run_id)}/taskInstances/{task}/logs/1?full_content=true"
        text = json.dumps(fast_lane.call("GET", path)["content"])
        assert expected in text, (task, text[-2000:])
