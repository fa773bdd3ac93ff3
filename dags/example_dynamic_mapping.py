"""Example: dynamic task mapping over a list the Azure Blob XCom backend keeps in Blob Storage.

list_partitions returns the month's manifest of a landing zone: one entry per day partition, each listing that
day's 24 hourly files (path, rows, bytes, MD5), as a listing of the landing container would (made up here, the same
for every run of a month). About 100 KB as JSON, it is above the backend's threshold (64 KiB by default): the backend
uploads it as one compressed JSON blob and the metadata DB row holds a small reference. summarize_day is mapped over
it with ``.expand()``: one task instance per day (shown under its day in the UI), each builds a DataFrame of its
day's files and returns a one-row summary, small enough to stay inline. combine gets the summaries in day order and
returns the month's totals.

With the backend: the task process counts the list before it is stored and sends that count with the XCom; the
scheduler creates the mapped instances from the count and never reads the value. Each mapped instance reads the
whole list (one download per instance) and keeps its own item: map over lists of references (paths, dates, ids),
and let each instance read its own data, rather than over lists of data. Airflow caps a list at
``[core] max_map_length`` items (1024 by default).
"""

from __future__ import annotations

import calendar
import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
from airflow.sdk import Param, dag, get_current_context, task

HOURS = 24


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["example", "xcom", "mapping"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={"month": Param("2026-01", type="string", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")},
    doc_md=__doc__,
)
def example_dynamic_mapping():
    @task
    def list_partitions(params=None) -> list[dict[str, object]]:
        year, month = map(int, params["month"].split("-"))
        days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        return [{"day": day.isoformat(), "files": hourly_files(day)} for day in days]

    @task(map_index_template="{{ day }}")
    def summarize_day(partition: dict[str, object]) -> pd.DataFrame:
        get_current_context()["day"] = partition["day"]  # names this mapped instance in the UI
        files = pd.DataFrame(partition["files"])
        return pd.DataFrame(
            {
                "files": [len(files)],
                "rows": [int(files["rows"].sum())],
                "bytes": [int(files["bytes"].sum())],
                "largest_file_rows": [int(files["rows"].max())],
            },
            index=pd.Index([partition["day"]], name="day"),
        )

    @task
    def combine(days: list[pd.DataFrame]) -> dict[str, object]:
        month = pd.concat(list(days))  # a lazy sequence: each summary is read as it is iterated
        totals = {
            "days": len(month),
            "files": int(month["files"].sum()),
            "rows": int(month["rows"].sum()),
            "bytes": int(month["bytes"].sum()),
            "busiest_day": str(month["rows"].idxmax()),
        }
        print(f"Combined {len(month)} daily summaries: {totals}")
        return totals

    combine(summarize_day.expand(partition=list_partitions()))


def hourly_files(day: date) -> list[dict[str, object]]:
    """The day's hourly files as a storage listing would describe them; seeded by the day, so runs agree."""
    rng = random.Random(day.toordinal())
    files = []
    for hour in range(HOURS):
        rows = rng.randint(5_000, 50_000)
        files.append(
            {
                "path": f"landing/orders/date={day.isoformat()}/hour={hour:02d}/part-00000.parquet",
                "rows": rows,
                "bytes": rows * 41 + rng.randint(0, 4_096),
                "content_md5": rng.randbytes(16).hex(),
            }
        )
    return files


example_dynamic_mapping()
