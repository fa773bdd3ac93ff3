"""Test DAG for tests/xcom/test_dag_runs.py: every way a task hands a value to another through the backend.

extract (DataFrame, offloaded) -> transform (pulls it, returns a list offloaded as JSON) -> fan out with dynamic
task mapping over that list -> collect; a classic PythonOperator pulls the DataFrame too; ``flaky`` pushes a
DataFrame then fails on its first attempt, so Airflow purges that XCom when the retry starts.
Results the test needs are written as JSON into the folder named by XCOM_TEST_OUT.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import dag, get_current_context, task


def record(name: str, payload: object) -> None:
    Path(os.environ["XCOM_TEST_OUT"], f"{name}.json").write_text(json.dumps(payload, default=str))


def frame(rows: int) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "id": range(rows),
            "city": pd.Categorical(["Oslo", "Lima"] * (rows // 2)),
            "at": pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC"),
            "qty": pd.array([1, None] * (rows // 2), dtype="Int64"),
        }
    )
    df.attrs["source"] = "extract"
    return df


def check_classic(ti) -> None:
    df = ti.xcom_pull(task_ids="extract")
    record("classic", {"rows": len(df), "dtypes": {c: str(t) for c, t in df.dtypes.items()}, "attrs": df.attrs})


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["test"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
)
def xcom_blob_contract():
    @task
    def extract() -> pd.DataFrame:
        return frame(20_000)

    @task
    def transform(df: pd.DataFrame) -> list[dict]:
        record(
            "transform",
            {"equal": df.equals(frame(20_000)), "attrs": df.attrs, "dtypes": df.dtypes.astype(str).to_dict()},
        )
        return [{"city": c, "payload": "x" * 400} for c in ["Oslo", "Lima", "Pune", "Kyiv", "Baku"]]

    @task
    def fan_out(item: dict) -> str:
        return item["city"]

    @task
    def collect(cities: list[str]) -> None:
        record("collect", sorted(cities))

    @task
    def flaky() -> None:
        ti = get_current_context()["ti"]
        ti.xcom_push(key="partial", value=frame(10_000))
        if ti.try_number == 1:
            raise RuntimeError("first attempt fails on purpose")

    df = extract()
    cities = fan_out.expand(item=transform(df))
    collect(cities)
    df >> PythonOperator(task_id="classic_pull", python_callable=check_classic)
    flaky()


xcom_blob_contract()
