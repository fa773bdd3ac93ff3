"""example_dataframe_pipeline on the local cluster under the KubernetesExecutor, triggered through the REST API:
one worker pod per task, built from the chart's pod template and deleted afterwards; the DataFrame travels as a
Parquet blob in the in-cluster Azurite; task logs are in Blob and the api-server serves them once the pods are gone;
the image's XCom preview plugin shows the DataFrames from the api-server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import decode_table, metadata_ids, parse_uri
from scripts.airflow_api import Api, run_dag, run_path
from scripts.devstack.services import azurite_connection_string
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodLife, PodWatch
from tests.cluster.conftest import Deployment
from tests.support.cluster import NAMESPACE
from tests.support.helm import all_containers, env_of, render

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
RUN_BOUND_S = 600
POD_GONE_BOUND_S = 180


@dataclass
class Run:
    run_id: str
    tasks: dict[str, dict]  # task_id -> task instance (REST)
    pods: dict[str, PodLife]

    @property
    def path(self) -> str:
        return run_path(DAG_ID, self.run_id)


@pytest.fixture(scope="module")
def dataframe_run(deployment: Deployment, api: Api) -> Run:
    selector = f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}"
    with PodWatch(deployment.cluster.kubeconfig, NAMESPACE, selector) as watch:
        run_id = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
        tasks = {
            ti["task_id"]: ti for ti in api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances")["task_instances"]
        }
        pods = watch.wait_until_gone(count=len(tasks), timeout=POD_GONE_BOUND_S)
    return Run(run_id, tasks, pods)


@pytest.fixture(scope="module")
def blobs(azurite_port: int) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", azurite_port))


def test_every_task_succeeds_in_a_worker_pod_of_its_own(dataframe_run: Run) -> None:
    assert {task: ti["state"] for task, ti in dataframe_run.tasks.items()} == dict.fromkeys(
        ("extract", "transform", "load"), "success"
    )
    assert sorted(pod.task_id for pod in dataframe_run.pods.values()) == sorted(dataframe_run.tasks)
    for pod in dataframe_run.pods.values():
        assert pod.labels["dag_id"] == DAG_ID
        assert "Succeeded" in pod.phases, (pod.name, pod.phases)


def test_worker_pods_are_built_from_the_charts_pod_template(dataframe_run: Run) -> None:
    template = render(profile=("kind", "local-cluster")).worker_pod_template()
    [expected] = template["spec"]["containers"]
    for pod in dataframe_run.pods.values():
        spec = pod.spec["spec"]
        [base] = [c for c in all_containers(spec) if c["name"] == "base"]
        assert base["image"] == expected["image"]
        assert base["securityContext"] == expected["securityContext"]
        assert spec["securityContext"] == template["spec"]["securityContext"]
        assert spec["serviceAccountName"] == template["spec"]["serviceAccountName"]
        assert pod.labels.items() >= template["metadata"]["labels"].items()
        assert env_of(base).items() >= env_of(expected).items()
        # The workers never hold the metadata DB URL, the Fernet key or the JWT signing secret.
        for secret in (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        ):
            assert secret not in env_of(base)


def test_worker_pods_are_deleted_after_their_tasks(dataframe_run: Run, deployment: Deployment) -> None:
    for pod in dataframe_run.pods.values():
        assert pod.finished is not None
        assert pod.deleted is not None
        assert pod.deleted >= pod.finished
    left = deployment.cluster.get("pods", "--selector", f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}")["items"]
    assert not left


def test_the_xcom_row_holds_the_blob_reference_and_the_blob_carries_the_ids(
    dataframe_run: Run, api: Api, blobs: BlobServiceClient
) -> None:
    reference = api.call("GET", f"{dataframe_run.path}/taskInstances/extract/xcomEntries/return_value")["value"]
    assert reference["azblob_xcom_ref"] == 1
    assert reference["format"] == "parquet"
    assert reference["rows"] == 200_000
    container, name = parse_uri(reference["uri"])
    properties = blobs.get_blob_client(container, name).get_blob_properties()
    assert properties.size == reference["size_bytes"]
    assert metadata_ids(properties.metadata) == {
        "dag_id": DAG_ID, "run_id": dataframe_run.run_id, "task_id": "extract", "map_index": "-1",
        "key": "return_value",
    }  # fmt: skip


def test_task_logs_are_in_blob_and_served_by_the_api_server_after_the_pods_are_gone(
    dataframe_run: Run, api: Api, blobs: BlobServiceClient
) -> None:
    logs = blobs.get_container_client("airflow-logs")
    prefix = f"logs/dag_id={DAG_ID}/run_id={dataframe_run.run_id}/"
    names = {blob.name.removeprefix(prefix) for blob in logs.list_blobs(name_starts_with=prefix)}
    assert names >= {f"task_id={task}/attempt=1.log" for task in dataframe_run.tasks}
    assert all(pod.deleted for pod in dataframe_run.pods.values())  # nothing left to serve them from but Blob
    content = api.call("GET", f"{dataframe_run.path}/taskInstances/extract/logs/1?full_content=true")["content"]
    assert "Stored XCom 'return_value' (pandas.DataFrame, 200,000 x 5" in json.dumps(content)


def test_the_api_servers_xcom_preview_shows_the_blobs_first_rows_and_the_inline_frame(
    dataframe_run: Run, api: Api, blobs: BlobServiceClient
) -> None:
    """include/plugins/xcom_preview.py as the image's api-server loads it: extract's 200k-row blob read in ranges,
    its dtypes and first rows equal to the blob's; transform's small aggregate, inline in the DB row, as a table."""
    ids = f"dag_id={DAG_ID}&run_id={quote(dataframe_run.run_id)}"
    shown = api.call("GET", f"/xcom-preview/api/preview?{ids}&task_id=extract&rows=5")
    reference = api.call("GET", f"{dataframe_run.path}/taskInstances/extract/xcomEntries/return_value")["value"]
    assert shown["reference"] == reference
    assert shown["bytes_read"] < reference["size_bytes"]
    stored = blobs.get_blob_client(*parse_uri(reference["uri"])).download_blob().readall()
    orders = decode_table(bytearray(stored), "pandas.DataFrame")
    assert [column["dtype"] for column in shown["schema"]] == [str(dtype) for dtype in orders.dtypes]
    head = orders.head(5)
    assert shown["rows"] == [
        [str(i), *map(str, row)] for i, row in zip(head.index, head.itertuples(index=False), strict=True)
    ]
    transform = api.call("GET", f"/xcom-preview/api/preview?{ids}&task_id=transform")
    assert (transform["storage"], transform["kind"], len(transform["rows"])) == ("inline", "table", 100)
