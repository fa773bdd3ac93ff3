"""Test DAG for tests/plugins/test_failure_alerts.py: one task that fails both of its tries, one whose first try
fails and whose retry succeeds, one that succeeds. The run ends failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

ERROR = "no rows in <input> & nothing to load"


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
