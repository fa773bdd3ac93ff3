"""End-to-end test DAG (tests/e2e): a task process that receives SIGTERM, as in a worker pod being deleted.

Attempt 1 of ``interrupted`` records "<run_id> <pid>" in the Variable e2e_terminated_pid and waits (bounded) for the
test to send that process SIGTERM; the retry passes at once. include/plugins/task_termination.py makes the SIGTERM
fail attempt 1 (even through the ``except Exception`` below), so its log is uploaded and the retry runs.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from airflow.sdk import Variable, dag, get_current_context, task

PID_VARIABLE = "e2e_terminated_pid"
WAIT_BOUND_S = 300


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["e2e"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
)
def e2e_terminated_task():
    @task
    def interrupted() -> None:
        context = get_current_context()
        attempt = context["ti"].try_number
        print(f"e2e-marker interrupted attempt {attempt}")
        if attempt > 1:
            return
        Variable.set(PID_VARIABLE, f"{context['run_id']} {os.getpid()}")
        try:
            deadline = time.monotonic() + WAIT_BOUND_S
            while time.monotonic() < deadline:
                time.sleep(0.2)
        except Exception:
            print("e2e-marker task code swallowed the termination")
        raise RuntimeError(f"no SIGTERM arrived within {WAIT_BOUND_S} s")

    interrupted()


e2e_terminated_task()
