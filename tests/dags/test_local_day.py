"""The chart's `timezone` value to the schedule the scheduler computes: dags/example_local_day.py runs on local days.

For each zone, the chart renders airflow.cfg with `timezone=<zone>`; a fresh process loads dags/ with that
[core] default_timezone, serializes the DAG as the dag-processor does, and asks the core timetable the scheduler
uses for a year of runs (2026). Every run must start and end at a local midnight, cover one local calendar day,
and be 24 hours long except on the DST change days of a zone that has them (23 and 25 hours).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scripts.paths import ROOT
from tests.support.helm import render

pytestmark = pytest.mark.slow

RUNS = 365
SCHEDULE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["example_local_day"]))
restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
runs, last = [], None
for _ in range(int(sys.argv[2])):
    info = dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    last = info.data_interval
    runs.append([info.logical_date.isoformat(), last.start.isoformat(), last.end.isoformat()])
print(json.dumps({"zone": dag.timezone.name, "runs": runs}))
"""


def default_timezone_of(zone: str) -> str:
    """[core] default_timezone of the airflow.cfg the chart renders for ``timezone=zone``."""
    return render({"timezone": zone}).airflow_config()["core"]["default_timezone"]


def scheduled_runs(default_timezone: str, tmp_path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": default_timezone,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCHEDULE, str(ROOT / "dags"), str(RUNS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("zone", "short_day", "long_day"),
    [
        ("Asia/Seoul", None, None),  # no DST
        ("Europe/Berlin", "2026-03-29", "2026-10-25"),
        ("America/New_York", "2026-03-08", "2026-11-01"),
    ],
)
def test_runs_cover_local_days_from_midnight_to_midnight(zone: str, short_day, long_day, tmp_path) -> None:
    configured = default_timezone_of(zone)
    assert configured == zone
    schedule = scheduled_runs(configured, tmp_path)
    assert schedule["zone"] == zone
    local = ZoneInfo(zone)
    days, lengths = [], {}
    for logical, start, end in schedule["runs"]:
        start_local = datetime.fromisoformat(start).astimezone(local)
        end_local = datetime.fromisoformat(end).astimezone(local)
        assert datetime.fromisoformat(logical) == datetime.fromisoformat(start)
        assert (start_local.hour, start_local.minute, end_local.hour, end_local.minute) == (0, 0, 0, 0), start
        assert end_local.date() == start_local.date() + timedelta(days=1)
        days.append(start_local.date())
        elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)  # in UTC: the real hours
        lengths[start_local.date().isoformat()] = elapsed.total_seconds() / 3600
    assert days[0].isoformat() == "2026-01-01"
    assert days == [days[0] + timedelta(days=i) for i in range(RUNS)]  # every local day, none twice
    odd = {day: hours for day, hours in lengths.items() if hours != 24}
    expected = {} if short_day is None else {short_day: 23, long_day: 25}
    assert odd == expected
