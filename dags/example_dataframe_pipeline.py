"""Example: a multi-MB pandas DataFrame passed between TaskFlow tasks through the Azure Blob XCom backend.

extract builds a day of orders (about 200k rows, ~10 MB in memory) and simply returns it; the backend uploads it
as one Parquet blob and stores a small JSON reference in the metadata DB. transform receives an identical
DataFrame (dtypes, categories, time zones) and returns a city-by-hour aggregate of a few KB: below the backend's
threshold (64 KiB by default), so it stays inline in the DB exactly as Airflow would store it. load returns a
dict of totals. Nothing here knows about Blob Storage: that is the point.

transform and load are tiny: where the release offers a fast lane (the chart's executor:
KubernetesExecutor,LocalExecutor) they run in the scheduler instead of a pod each, and on any other executor where
they would anyway (include/lanes.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from airflow.sdk import dag, task

from include.lanes import fast_lane

ROWS = 200_000


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["example", "xcom", "dataframe"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def example_dataframe_pipeline():
    @task
    def extract(logical_date=None) -> pd.DataFrame:
        import numpy as np

        rng = np.random.default_rng(seed=int(logical_date.timestamp()) if logical_date else 0)
        return pd.DataFrame(
            {
                "order_id": np.arange(ROWS, dtype="int64"),
                "city": pd.Categorical(rng.choice(["Oslo", "Lima", "Pune", "Kyiv", "Baku"], ROWS)),
                "amount": rng.gamma(2.0, 20.0, ROWS).round(2),
                "coupon": pd.array(np.where(rng.random(ROWS) < 0.8, None, rng.integers(5, 50, ROWS)), "Int64"),
                "ordered_at": pd.date_range("2026-01-01", periods=ROWS, freq="400ms", tz="Europe/Oslo"),
            }
        )

    @task(executor=fast_lane())
    def transform(orders: pd.DataFrame) -> pd.DataFrame:
        orders["hour"] = orders["ordered_at"].dt.floor("h")
        return orders.groupby(["city", "hour"], observed=True).agg(
            orders=("order_id", "count"), revenue=("amount", "sum"), coupons=("coupon", "count")
        )

    @task(executor=fast_lane())
    def load(by_city_hour: pd.DataFrame) -> dict[str, float]:
        totals = {
            "orders": int(by_city_hour["orders"].sum()),
            "revenue": round(float(by_city_hour["revenue"].sum()), 2),
            "cities": int(by_city_hour.index.get_level_values("city").nunique()),
        }
        print(f"Loaded {len(by_city_hour)} city-hour rows: {totals}")
        return totals

    load(transform(extract()))


example_dataframe_pipeline()
