"""Pushed to the local cluster by tests/cluster/test_production_surface.py, with the release in its production shape:

* ``read_team_config`` reads the file the ConfigMap (an ``extraObjects`` entry) puts into every worker pod through
  ``workers.extraVolumes`` / ``workers.extraVolumeMounts``, and returns it;
* ``wait_in_the_triggerer`` defers to a trigger (3 s), which one of the triggerer replicas runs; the task resumes in
  a new worker pod and returns what the trigger sent.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, task

TEAM_FILE = Path("/opt/team/team.txt")


class WaitInTheTriggerer(BaseOperator):
    """Defers at once; the trigger fires after ``seconds``, and the task resumes in ``resume``."""

    def __init__(self, *, seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def execute(self, context: Any) -> None:
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=self.seconds)), method_name="resume")

    def resume(self, context: Any, event: Any = None) -> str:
        return f"resumed after the trigger fired ({event!r})"


@dag(
    dag_id="cluster_production_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def cluster_production_dag() -> None:
    @task
    def read_team_config() -> str:
        return TEAM_FILE.read_text()

    read_team_config()
    WaitInTheTriggerer(task_id="wait_in_the_triggerer", seconds=3)


cluster_production_dag()
