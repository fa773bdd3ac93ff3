"""Test DAG for tests/plugins/test_failure_alerts.py and tests/cluster/test_failure_alerting.py: one task that fails
both of its tries, one whose first try fails and whose retry succeeds, one that succeeds. The run ends failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

ERROR = "no rows in <input> & nothing to load"
# What each task ends as, alerts or no alerts.
STATES = {"always_fails": "failed", "fails_once": "success", "succeeds": "success"}
# The titles of the alerts a run sends with the default settings (on_retry on), sorted.
ALERT_TITLES = [
    "DAG run failed: alerts_fixture",
    "Task failed: alerts_fixture.always_fails",
    "Task try failed, will retry: alerts_fixture.always_fails",
    "Task try failed, will retry: alerts_fixture.fails_once",
]


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["test"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
)
def alerts_fixture():
    @task
    def always_fails() -> None:
        raise ValueError(ERROR)

    @task
    def fails_once() -> str:
        if get_current_context()["ti"].try_number == 1:
            raise RuntimeError("the first try fails")
        return "ok"

    @task
    def succeeds() -> int:
        return 1

    always_fails()
    fails_once()
    succeeds()


alerts_fixture()
