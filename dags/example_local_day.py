"""Example: a daily DAG on the team's local day, not UTC's.

Its start date is made in ``[core] default_timezone`` (the chart's ``timezone`` value, e.g. Asia/Seoul; the local
stack reads the same airflow.cfg) and its schedule is "every local midnight" in that zone: each run covers one
local calendar day, from midnight to midnight. Where the zone has daylight saving time, the day it starts is 23
hours long and the day it ends 25, and the runs still start at local midnight. ``summarize`` reports the day its
run covers; a real pipeline would read that day's partition.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task, timezone

# timezone.datetime: midnight in [core] default_timezone (an aware datetime), not in UTC.
START = timezone.datetime(2026, 1, 1)


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=START.tzinfo),
    start_date=START,
    catchup=False,
    tags=["example", "timezone"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def example_local_day():
    @task
    def summarize(data_interval_start=None, data_interval_end=None, dag=None) -> dict[str, object]:
        start, end = data_interval_start.in_timezone(dag.timezone), data_interval_end.in_timezone(dag.timezone)
        return {
            "day": start.date().isoformat(),
            "zone": dag.timezone.name,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "hours": (data_interval_end - data_interval_start).total_seconds() / 3600,  # 23 or 25 on DST days
        }

    summarize()


example_local_day()
