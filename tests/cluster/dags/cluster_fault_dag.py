"""Pushed to the local cluster by tests/cluster/test_faults.py: produce -> gate -> consume, where ``consume`` pulls the
DataFrame ``produce`` pushed to Blob, and ``gate`` holds the run in between while a test injects its fault.

The run's conf says how ``gate`` holds:
  {"hold": "until-released"}  every attempt waits until the Variable cluster_fault_release holds this run's id
  {"hold": "first-attempt"}   attempt 1 waits for a release that never comes (the test deletes its pod instead);
                              the retry passes at once
Waits are bounded, so nothing hangs for ever; each attempt logs which attempt it is.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
import pendulum
from airflow.sdk import Variable, dag, get_current_context, task

RELEASE_VARIABLE = "cluster_fault_release"
HOLD_BOUND_S = 900
ROWS = 100_000


@dag(
    dag_id="cluster_fault_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    tags=["test"],
)
def cluster_fault_dag() -> None:
    @task
    def produce() -> pd.DataFrame:
        return pd.DataFrame({"n": range(ROWS), "label": [f"row {i}" for i in range(ROWS)]})

    @task
    def gate() -> None:
        context = get_current_context()
        run_id, attempt = context["run_id"], context["ti"].try_number
        hold = (context["dag_run"].conf or {}).get("hold")
        print(f"gate: attempt {attempt} holds ({hold})")
        if hold == "until-released" or (hold == "first-attempt" and attempt == 1):
            deadline = time.monotonic() + HOLD_BOUND_S
            while Variable.get(RELEASE_VARIABLE, default=None) != run_id:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gate held {HOLD_BOUND_S} s and run {run_id} was never released")
                time.sleep(1)
        print(f"gate: attempt {attempt} passed")

    @task
    def consume(df: pd.DataFrame) -> int:
        assert df["label"].iloc[-1] == f"row {ROWS - 1}", df.tail()
        return len(df)

    produced = produce()
    produced >> gate() >> consume(produced)


cluster_fault_dag()
