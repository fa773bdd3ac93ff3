"""Example: the smallest TaskFlow ETL, extract -> transform -> load, for Airflow 3.

Its shape is that of the TaskFlow tutorial in Airflow's documentation (the `tutorial_taskflow_api` DAG): extract
parses a JSON document of order values, as an API would return it; transform adds the values up; load reports the
total. Each result is a plain Python value passed by returning it and taking it as an argument: Airflow moves it as
an XCom, through the Azure Blob backend like every other value. All three are a few bytes, far below the backend's
threshold (64 KiB by default), so they stay inline in the metadata DB exactly as Airflow would store them; a value
above it would go to Blob Storage with no change to this file (see example_dataframe_pipeline).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

# What a source system would send: order id -> order value.
ORDERS_JSON = '{"1001": 301.27, "1002": 433.21, "1003": 502.22}'


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["example", "taskflow"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def example_taskflow_etl():
    @task(multiple_outputs=False)  # one XCom holding the whole dict: transform takes it whole
    def extract() -> dict[str, float]:
        return json.loads(ORDERS_JSON)

    @task
    def transform(orders: dict[str, float]) -> dict[str, float]:
        # A dict return annotation pushes each key as an XCom of its own: load takes just the total.
        return {"total_order_value": round(sum(orders.values()), 2)}

    @task
    def load(total_order_value: float) -> None:
        print(f"Total order value: {total_order_value:.2f}")

    load(transform(extract())["total_order_value"])


example_taskflow_etl()
