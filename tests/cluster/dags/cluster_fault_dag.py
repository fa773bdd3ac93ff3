"""Pushed to the local cluster by tests/cluster/test_faults.py: produce -> gate -> consume, where ``consume`` pulls the
DataFrame ``produce`` pushed to Blob, and ``gate`` holds the run in between while a test injects its fault.

The run's conf says how ``gate`` holds:
  {"hold": "until-released"}  every attempt waits until the Variable cluster_fault_release holds this run's id
  {"hold": "first-attempt"}   attempt 1 waits for a release that never comes (the test deletes its pod instead);
                              the retry passes at once
and {"hold_push": true} makes each attempt of ``produce`` wait, before it returns its DataFrame (the push), until
the Variable holds "<run id> push <attempt>".
A task that starts waiting first writes what it waits for into the Variable cluster_fault_holding, so a test knows
the task's code is running. Waits are bounded, so nothing hangs for ever; each attempt logs which attempt it is.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
import pendulum
from airflow.sdk import Variable, dag, get_current_context, task

RELEASE_VARIABLE = "cluster_fault_release"
HOLDING_VARIABLE = "cluster_fault_holding"
HOLD_BOUND_S = 900
ROWS = 100_000


def hold_until(release: str) -> None:
    """Say in the Variable cluster_fault_holding that this task now waits for ``release`` (its code runs: Airflow's
    signal handling is in place), then wait until the Variable cluster_fault_release holds ``release``."""
    Variable.set(HOLDING_VARIABLE, release)
    deadline = time.monotonic() + HOLD_BOUND_S
    while Variable.get(RELEASE_VARIABLE, default=None) != release:
        if time.monotonic() > deadline:
            raise RuntimeError(f"held {HOLD_BOUND_S} s and {release!r} was never released")
        time.sleep(1)


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
        context = get_current_context()
        run_id, attempt = context["run_id"], context["ti"].try_number
        if (context["dag_run"].conf or {}).get("hold_push"):
            print(f"produce: attempt {attempt} holds before its push")
            hold_until(f"{run_id} push {attempt}")
        return pd.DataFrame({"n": range(ROWS), "label": [f"row {i}" for i in range(ROWS)]})

    @task
    def gate() -> None:
        context = get_current_context()
        run_id, attempt = context["run_id"], context["ti"].try_number
        hold = (context["dag_run"].conf or {}).get("hold")
        print(f"gate: attempt {attempt} holds ({hold})")
        if hold == "until-released" or (hold == "first-attempt" and attempt == 1):
            hold_until(run_id)
        print(f"gate: attempt {attempt} passed")

    @task
    def consume(df: pd.DataFrame) -> int:
        assert df["label"].iloc[-1] == f"row {ROWS - 1}", df.tail()
        return len(df)

    produced = produce()
    produced >> gate() >> consume(produced)


cluster_fault_dag()
