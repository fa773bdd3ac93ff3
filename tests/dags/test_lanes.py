"""include/lanes.py: one DAG file parses on every executor the chart offers, and its tiny tasks take the fast lane
only where there is one. Each configuration is parsed by Airflow's own DagBag in a fresh interpreter (the executor
loader caches [core] executor for the life of a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scripts.paths import ROOT

PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
from include.lanes import fast_lane
bag = DagBag(dag_folder={folder!r})
dag = bag.dags.get("example_dataframe_pipeline")
print(json.dumps({{
    "fast_lane": fast_lane(),
    "errors": {{path: str(error)[-300:] for path, error in bag.import_errors.items()}},
    "executors": {{task.task_id: task.executor for task in dag.tasks}} if dag else None,
}}))
"""


def python(probe: str, executor: str) -> subprocess.CompletedProcess[str]:
    """``probe`` in a fresh interpreter whose airflow.cfg says [core] executor = ``executor``."""
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": executor, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", probe]
    return subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=180)


def parse_with(executor: str) -> dict:
    result = python(PROBE.format(folder=str(ROOT / "dags")), executor)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("executor", "lane"),
    [
        ("KubernetesExecutor", None),
        ("LocalExecutor", None),
        ("KubernetesExecutor,LocalExecutor", "LocalExecutor"),
        ("LocalExecutor,KubernetesExecutor", None),  # the LocalExecutor is the default there
    ],
)
def test_the_example_parses_everywhere_and_its_tiny_tasks_ask_for_the_fast_lane_where_there_is_one(
    executor: str, lane: str | None
) -> None:
    parsed = parse_with(executor)
    assert parsed["errors"] == {}
    assert parsed["fast_lane"] == lane
    assert parsed["executors"] == {"extract": None, "transform": lane, "load": lane}


def test_a_task_naming_an_executor_the_release_lacks_is_what_airflow_refuses() -> None:
    """Why fast_lane() exists: executor="LocalExecutor" written into a DAG breaks it on a KubernetesExecutor release."""
    probe = (
        "from airflow.dag_processing.dagbag import _validate_executor_fields\n"
        "from airflow.sdk import DAG, task\n"
        "with DAG('lanes_probe', schedule=None) as dag:\n"
        "    task(executor='LocalExecutor')(lambda: None).override(task_id='tiny')()\n"
        "_validate_executor_fields(dag)\n"
    )
    result = python(probe, "KubernetesExecutor")
    assert result.returncode != 0
    assert "specifies executor 'LocalExecutor', which is not available" in result.stderr
