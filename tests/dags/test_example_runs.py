"""The example DAGs run for real with `airflow dags test` and the Blob XCom backend at its default threshold."""

from __future__ import annotations

import os
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import REFERENCE_MARKER, decode_json, parse_uri
from scripts.devstack.services import Azurite
from scripts.paths import ROOT
from tests.support.airflow import dags_test, task_instances, wasb_connection, xcom_rows

pytestmark = pytest.mark.slow


def example_env(azurite: Azurite) -> tuple[dict[str, str], str]:
    """The environment of one example's run (the backend on Azurite, a container of its own) and that container."""
    container = f"example-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": container,
    }
    return env, container


def test_dataframe_pipeline_offloads_the_large_frame_and_keeps_small_results_inline(airflow_db, azurite):
    env, container = example_env(azurite)
    log = dags_test("example_dataframe_pipeline", ROOT / "dags", env)
    assert "Loaded " in log
    rows = xcom_rows(airflow_db, "example_dataframe_pipeline")
    extract = rows[("extract", -1, "return_value")]
    assert (extract["format"], extract["rows"], extract["columns"]) == ("parquet", 200_000, 5)
    assert extract["uri"].startswith(f"xcom_wasb://{container}/dag_id=example_dataframe_pipeline/")
    # The aggregate is a few KB: inline, in Airflow's own DataFrame form; load's dict pushes one row per key.
    assert rows[("transform", -1, "return_value")]["__classname__"] == "pandas.DataFrame"
    assert rows[("load", -1, "orders")] == 200_000
    assert rows[("load", -1, "cities")] == 5


def test_taskflow_etl_sums_the_orders_and_keeps_its_small_values_inline(airflow_db, azurite):
    env, _ = example_env(azurite)
    log = dags_test("example_taskflow_etl", ROOT / "dags", env)
    assert "Total order value: 1236.70" in log
    states = {task_id: ti["state"] for (task_id, _), ti in task_instances(airflow_db, "example_taskflow_etl").items()}
    assert states == {"extract": "success", "transform": "success", "load": "success"}
    # A few bytes each: the rows hold the values themselves, as Airflow's own XCom stores them; nothing went to Blob.
    rows = xcom_rows(airflow_db, "example_taskflow_etl")
    assert rows[("extract", -1, "return_value")] == {"1001": 301.27, "1002": 433.21, "1003": 502.22}
    assert rows[("transform", -1, "total_order_value")] == 1236.7
    assert "Stored XCom" not in log


def test_dynamic_mapping_expands_one_instance_per_day_over_the_offloaded_manifest(airflow_db, azurite):
    dag_id = "example_dynamic_mapping"
    env, container = example_env(azurite)
    log = dags_test(dag_id, ROOT / "dags", env)

    # The DB row of the mapped-over list is a reference to a JSON blob, not the list.
    rows = xcom_rows(airflow_db, dag_id)
    ref = rows[("list_partitions", -1, "return_value")]
    assert REFERENCE_MARKER in ref, f"the manifest stayed inline: {str(ref)[:200]}"
    assert (ref["format"], ref["type"]) == ("json", "builtins.list")
    assert ref["uri"].startswith(f"xcom_wasb://{container}/dag_id={dag_id}/")
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(*parse_uri(ref["uri"]))
    manifest = decode_json(blob.download_blob().readall(), ref["compression"])
    days = [f"2026-01-{d:02d}" for d in range(1, 32)]
    assert [partition["day"] for partition in manifest] == days

    # One mapped instance per list item, each named by its day; each read the whole list from Blob.
    instances = task_instances(airflow_db, dag_id)
    assert {ti["state"] for ti in instances.values()} == {"success"}, instances
    mapped = {m: ti["rendered_map_index"] for (task_id, m), ti in instances.items() if task_id == "summarize_day"}
    assert [mapped[m] for m in sorted(mapped)] == days
    assert sorted(mapped) == list(range(31))
    assert log.count(f"Read XCom from {ref['uri']}") == 31

    # The daily summaries are small: inline DataFrames. combine's totals agree with the manifest in Blob.
    assert {rows[("summarize_day", m, "return_value")]["__classname__"] for m in range(31)} == {"pandas.DataFrame"}
    files = [f for partition in manifest for f in partition["files"]]
    busiest = max(manifest, key=lambda partition: sum(f["rows"] for f in partition["files"]))["day"]
    assert rows[("combine", -1, "days")] == 31
    assert rows[("combine", -1, "files")] == len(files) == 31 * 24
    assert rows[("combine", -1, "rows")] == sum(f["rows"] for f in files)
    assert rows[("combine", -1, "bytes")] == sum(f["bytes"] for f in files)
    assert rows[("combine", -1, "busiest_day")] == busiest


def test_the_load_benchmarks_dag_runs_its_mapped_and_plain_tasks(airflow_db, azurite):
    """scripts/bench_dags/bench_scale_dag.py, which `make bench-cluster-load` runs with 280 mapped tasks, with 3."""
    env, _ = example_env(azurite)
    dags_test("bench_scale_dag", ROOT / "scripts" / "bench_dags", env, conf={"mapped": 3})
    states = {key: ti["state"] for key, ti in task_instances(airflow_db, "bench_scale_dag").items()}
    assert sorted(key for key in states if key[0] == "produce") == [("produce", index) for index in range(3)]
    assert len(states) == 3 + 18 + 2
    assert set(states.values()) == {"success"}
    assert xcom_rows(airflow_db, "bench_scale_dag")[("check", -1, "return_value")] == 3
