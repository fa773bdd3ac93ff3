"""Test DAGs for tests/dags/test_maintenance.py and test_db_cleanup.py: offloaded XComs (live references) to judge.

With a 1 KiB threshold every value here goes to Blob: ``produce`` returns one list and pushes two more under the
keys ``spare`` and ``broken``; ``fan_out`` is mapped over two items, so its blobs differ only by map_index. The
test deletes or edits some of these rows in the metadata DB (what ``airflow db clean`` does) to make orphans.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

PAYLOAD = "x" * 2000  # above the tests' 1 KiB threshold


def fixture(dag_id: str) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["test"],
        default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    )
    def offloaded_xcoms():
        @task
        def produce() -> list[str]:
            ti = get_current_context()["ti"]
            ti.xcom_push(key="spare", value=[PAYLOAD, "spare"])
            ti.xcom_push(key="broken", value=[PAYLOAD, "broken"])
            return [PAYLOAD, "first"]

        @task
        def fan_out(item: int) -> list[str]:
            return [PAYLOAD, str(item)]

        produce()
        fan_out.expand(item=[0, 1])

    offloaded_xcoms()


# One DAG per test module: both share the session's metadata DB, and each edits or deletes its own DAG's rows.
fixture("retention_fixture")  # tests/dags/test_maintenance.py
fixture("cleanup_fixture")  # tests/dags/test_db_cleanup.py
