"""End-to-end test DAG (tests/e2e): committed to the local stack's Git repository by the test, not shipped in dags/.

extract returns a DataFrame (offloaded to Blob); flaky fails on its first attempt and succeeds on the retry, so
both attempts' logs must survive in Blob; check pulls the DataFrame and prints a marker the test finds in the log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from airflow.sdk import dag, get_current_context, task


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["e2e"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
)
def e2e_blob_pipeline():
    @task
    def extract() -> pd.DataFrame:
        return pd.DataFrame({"n": range(50_000), "label": pd.Categorical(["a", "b"] * 25_000)})

    @task
    def flaky() -> None:
        attempt = get_current_context()["ti"].try_number
        print(f"e2e-marker flaky attempt {attempt}")
        if attempt == 1:
            raise RuntimeError("e2e: the first attempt fails on purpose")

    @task
    def check(df: pd.DataFrame) -> int:
        print(f"e2e-marker check rows={len(df)} dtype={df['label'].dtype}")
        return len(df)

    check(extract()) >> flaky()


e2e_blob_pipeline()
