"""DAG-level tests: a real `airflow dags test` run of tests/xcom/dags/xcom_blob_contract.py with the backend on.

One run (module fixture) exercises TaskFlow DataFrame passing, a retry, dynamic task mapping over an offloaded
list and a classic operator pulling; the tests then read what it left in the metadata DB and in Azurite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from include.azblob_xcom_backend import metadata_ids, parse_uri
from scripts.paths import ROOT
from tests.support.airflow import dags_test, wasb_connection, xcom_rows

DAG_ID = "xcom_blob_contract"
DAGS = ROOT / "tests" / "xcom" / "dags"

pytestmark = pytest.mark.slow


@dataclass
class DagRun:
    log: str
    out: Path
    db: Path
    container: ContainerClient

    def recorded(self, name: str):
        return json.loads((self.out / f"{name}.json").read_text())

    def xcoms(self) -> dict[tuple[str, int, str], object]:
        return xcom_rows(self.db, DAG_ID)

    def task_states(self) -> dict[tuple[str, int], str]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", (DAG_ID,))
            return {(t, m): s for t, m, s in rows}


@pytest.fixture(scope="module")
def dag_run(airflow_db, azurite, tmp_path_factory) -> DagRun:
    out = tmp_path_factory.mktemp("dag-out")
    container = f"dagtest-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": container,
        "AIRFLOW__AZBLOB_XCOM__THRESHOLD": "1024",
        "XCOM_TEST_OUT": str(out),
    }
    log = dags_test(DAG_ID, DAGS, env)
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return DagRun(log=log, out=out, db=airflow_db, container=client)


def test_every_task_succeeds_including_the_retry_and_all_mapped_instances(dag_run):
    states = dag_run.task_states()
    assert set(states.values()) == {"success"}, states
    assert sorted(m for t, m in states if t == "fan_out") == [0, 1, 2, 3, 4]
    assert "first attempt fails on purpose" in dag_run.log


def test_taskflow_downstream_receives_the_exact_dataframe(dag_run):
    seen = dag_run.recorded("transform")
    assert seen["equal"] is True
    assert seen["attrs"] == {"source": "extract"}
    assert seen["dtypes"] == {"id": "int64", "city": "category", "at": "datetime64[us, UTC]", "qty": "Int64"}


def test_xcom_rows_hold_references_to_blobs_with_the_ids_in_their_metadata(dag_run):
    ref = dag_run.xcoms()[("extract", -1, "return_value")]
    assert ref["uri"].startswith(f"xcom_wasb://{dag_run.container.container_name}/dag_id={DAG_ID}/")
    assert (ref["format"], ref["rows"], ref["columns"]) == ("parquet", 20_000, 4)
    blob = dag_run.container.get_blob_client(parse_uri(ref["uri"])[1])
    props = blob.get_blob_properties()
    assert props.size == ref["size_bytes"]
    ids = metadata_ids(props.metadata)
    assert (ids["dag_id"], ids["task_id"], ids["map_index"], ids["key"]) == (DAG_ID, "extract", "-1", "return_value")
    assert ids["run_id"].startswith("manual__")


def test_a_retry_purges_the_blob_of_the_failed_attempt(dag_run):
    stored = [line for line in dag_run.log.splitlines() if "Stored XCom 'partial'" in line]
    assert len(stored) == 2, "flaky pushes 'partial' on both attempts"
    live = dag_run.xcoms()[("flaky", -1, "partial")]["uri"]
    blobs = [b.name for b in dag_run.container.list_blobs(name_starts_with=f"dag_id={DAG_ID}/")]
    flaky_blobs = [name for name in blobs if "/task_id=flaky/" in name]
    assert flaky_blobs == [parse_uri(live)[1]], "only the retry's blob is left"
    purged = [line for line in dag_run.log.splitlines() if "Purged XCom blob" in line and "task_id=flaky" in line]
    assert len(purged) == 1
    assert live not in purged[0]


def test_dynamic_mapping_over_an_offloaded_list_expands_every_item(dag_run):
    xcoms = dag_run.xcoms()
    assert xcoms[("transform", -1, "return_value")]["format"] == "json"
    assert sorted(xcoms[("fan_out", i, "return_value")] for i in range(5)) == ["Baku", "Kyiv", "Lima", "Oslo", "Pune"]
    assert dag_run.recorded("collect") == ["Baku", "Kyiv", "Lima", "Oslo", "Pune"]


def test_a_classic_operator_pulls_the_offloaded_dataframe(dag_run):
    seen = dag_run.recorded("classic")
    assert seen["rows"] == 20_000
    assert seen["dtypes"]["city"] == "category"
    assert seen["attrs"] == {"source": "extract"}
