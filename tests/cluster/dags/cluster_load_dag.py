"""Pushed to the local cluster by tests/cluster/test_load.py: 24 mapped ``produce`` tasks (three times the kind
profile's `[core] parallelism`), each in a worker pod of its own, push a DataFrame of their own through the XCom
backend at once; ``check`` pulls all 24 and compares each, dtypes and values, with the frame its index must have
produced. Heavier load is the benchmark's (`make bench-cluster-load`, 300 tasks).

Every frame is a pure function of its map index, so ``check`` needs nothing but the index to know what should
have arrived: a value crossed with another task's, or cut short, fails the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pendulum
from airflow.sdk import dag, task

TASKS = 24
ROWS = 50_000


def frame_for(index: int) -> pd.DataFrame:
    """The DataFrame the task of map index ``index`` pushes: the mixed dtypes the backend promises to keep."""
    rng = np.random.default_rng(index)
    ids = np.arange(ROWS, dtype="int64") + index * ROWS
    return pd.DataFrame(
        {
            "id": ids,
            "value": rng.normal(size=ROWS),
            "label": [f"task {index} row {i}" for i in range(ROWS)],
            "kind": pd.Categorical(rng.choice(["a", "b", "c"], size=ROWS), categories=["a", "b", "c"]),
            "at": pd.date_range("2026-01-01", periods=ROWS, freq="s", tz="UTC") + pd.Timedelta(days=index),
            "flag": ids % 2 == 0,
            "maybe": pd.array([None if i % 7 == 0 else i for i in range(ROWS)], dtype="Int64"),
        }
    )


@dag(
    dag_id="cluster_load_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=TASKS,  # Airflow's default per DAG is 16: let the executor's parallelism be the limit
    tags=["test"],
)
def cluster_load_dag() -> None:
    @task
    def produce(index: int) -> pd.DataFrame:
        return frame_for(index)

    @task
    def check(frames: list[pd.DataFrame]) -> dict[str, int]:
        verified = 0
        for index, frame in enumerate(frames):
            pd.testing.assert_frame_equal(frame, frame_for(index), check_exact=True)
            verified += 1
        print(f"check: {verified} DataFrames arrived whole, each from its own task")
        return {"verified": verified, "rows": verified * ROWS}

    check(produce.expand(index=list(range(TASKS))))


cluster_load_dag()
