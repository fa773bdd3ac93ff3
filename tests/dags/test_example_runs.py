"""The example DAGs run for real with `airflow dags test` and the Blob XCom backend at its default threshold."""

from __future__ import annotations

import os
import uuid

import pytest

from scripts.paths import ROOT
from tests.support.airflow import dags_test, wasb_connection, xcom_rows

pytestmark = pytest.mark.slow


def test_dataframe_pipeline_offloads_the_large_frame_and_keeps_small_results_inline(airflow_db, azurite):
    container = f"example-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": container,
    }
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
