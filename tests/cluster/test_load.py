"""Load on the local cluster: the mapped tasks of tests/cluster/dags/cluster_load_dag.py (24, three times the kind
profile's `[core] parallelism`) push a DataFrame each through the XCom backend at once under the KubernetesExecutor,
and one task pulls them all back.

Every value round-trips (``check`` compares each with the frame its index must have produced, dtypes included), the
XCom rows reference as many distinct blobs, each blob's metadata names its own map index, and the run's folder holds
exactly those blobs: no collision, no orphan. The wall time and the peak number of worker pods are printed; the
figures are in docs/reliability.md. With Airflow's default `[workers] execution_api_timeout` (5 s) the first run of
this test (50 tasks then) lost 2 tasks: the api-server, busy with ~20 pods starting at once, answered their
supervisors slower than that four times in a row; the chart's 30 s is what this test runs with. Heavier load is the
benchmark's: `make bench-cluster-load` (300 tasks, docs/benchmarks/cluster-load.md).
"""

from __future__ import annotations

import configparser
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import metadata_ids, parse_uri
from scripts.airflow_api import Api, run_path, trigger_dag, wait_for_run
from scripts.devstack.services import azurite_connection_string
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodLife, PodWatch, peak
from tests.cluster.conftest import Deployment
from tests.cluster.dags.cluster_load_dag import ROWS, TASKS
from tests.support.cluster import NAMESPACE
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
LOAD_DAG = Path(__file__).parent / "dags" / "cluster_load_dag.py"
DAG_ID = "cluster_load_dag"
REGISTERED_BOUND_S = 120
RUN_BOUND_S = 1500
POD_GONE_BOUND_S = 300


@dataclass
class LoadRun:
    run_id: str
    state: str
    seconds: float  # trigger -> the run finished
    pods: dict[str, PodLife]

    @property
    def path(self) -> str:
        return run_path(DAG_ID, self.run_id)


@pytest.fixture(scope="module")
def load_run(deployment: Deployment, api: Api, tmp_path_factory: pytest.TempPathFactory) -> LoadRun:
    deployment.push_and_register(api, tmp_path_factory.mktemp("load"), LOAD_DAG, DAG_ID, timeout=REGISTERED_BOUND_S)
    with PodWatch(deployment.cluster.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        started = time.monotonic()
        run_id = trigger_dag(api, DAG_ID)
        state = wait_for_run(api, DAG_ID, run_id, timeout=RUN_BOUND_S, interval=1)
        seconds = time.monotonic() - started
        pods = watch.wait_until_settled(count=TASKS + 1 if state == "success" else 1, timeout=POD_GONE_BOUND_S)
    run = LoadRun(run_id, state, seconds, pods)
    produced = [pod for pod in pods.values() if pod.task_id == "produce"]
    print(
        f"\n{DAG_ID}: {TASKS} mapped tasks x {ROWS:,} rows, trigger -> {state} in {seconds:.0f} s; worker pods "
        f"at once: {peak((p.created, p.deleted or p.finished) for p in pods.values())} existing, "
        f"{peak((p.running, p.finished) for p in pods.values())} running; produce pods created over "
        f"{max(p.created for p in produced) - min(p.created for p in produced):.0f} s; failed pods: "
        f"{sorted(p.name for p in pods.values() if 'Failed' in p.phases) or 'none'}"
    )
    return run


@pytest.fixture(scope="module")
def blobs(azurite_port: int) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", azurite_port))


def test_every_mapped_task_succeeds_at_its_first_try_in_a_pod_of_its_own(
    load_run: LoadRun, api: Api, deployment: Deployment
) -> None:
    assert load_run.state == "success"
    tries = api.call("GET", f"{load_run.path}/taskInstances?limit=100")["task_instances"]
    assert sorted((ti["task_id"], ti["map_index"], ti["state"], ti["try_number"]) for ti in tries) == sorted(
        [("produce", index, "success", 1) for index in range(TASKS)] + [("check", -1, "success", 1)]
    )
    produced = sorted(int(pod.labels["map_index"]) for pod in load_run.pods.values() if pod.task_id == "produce")
    assert produced == list(range(TASKS))
    assert all("Succeeded" in pod.phases and pod.deleted for pod in load_run.pods.values())
    assert not deployment.cluster.get("pods", "--selector", f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}")["items"]


def test_every_value_round_trips(load_run: LoadRun, api: Api) -> None:
    checked = api.call("GET", f"{load_run.path}/taskInstances/check/xcomEntries/return_value")["value"]
    assert checked == {"verified": TASKS, "rows": TASKS * ROWS}


def test_the_xcom_rows_reference_distinct_blobs_and_the_run_has_no_other(
    load_run: LoadRun, api: Api, blobs: BlobServiceClient
) -> None:
    references = {
        index: api.call("GET", f"{load_run.path}/taskInstances/produce/xcomEntries/return_value?map_index={index}")[
            "value"
        ]
        for index in range(TASKS)
    }
    located = {index: parse_uri(reference["uri"]) for index, reference in references.items()}
    assert len(set(located.values())) == TASKS, "two XCom rows reference the same blob"
    assert all(reference["rows"] == ROWS for reference in references.values())

    [container] = {container for container, _ in located.values()}
    client = blobs.get_container_client(container)
    run_folder = located[0][1].split("/task_id=")[0] + "/"
    stored = {blob.name: blob.metadata for blob in client.list_blobs(name_starts_with=run_folder, include="metadata")}
    assert set(stored) == {name for _, name in located.values()}, "the run holds blobs no XCom row references"
    for index, (_, name) in located.items():
        assert metadata_ids(stored[name]) == {
            "dag_id": DAG_ID, "run_id": load_run.run_id, "task_id": "produce", "map_index": str(index),
            "key": "return_value",
        }  # fmt: skip


def test_no_more_worker_pods_ran_at_once_than_the_executor_allows(load_run: LoadRun, deployment: Deployment) -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(deployment.cluster.get("configmap", f"{FULLNAME}-config")["data"]["airflow.cfg"])
    parallelism = config.getint("core", "parallelism")
    running = peak((pod.running, pod.finished) for pod in load_run.pods.values())
    assert 1 < running <= parallelism
