"""DAG integrity: every file in dags/ imports cleanly and follows the project's DAG conventions."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag

from scripts.paths import ROOT

DAGS = ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "dags/ holds no DAG"


def test_every_dag_has_tags_retries_and_a_timezone_aware_start_date(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.start_date is not None
        assert dag.start_date.tzinfo is not None, f"{dag_id}: start_date must be timezone-aware"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} has retries={task.retries}; use >= 2"
            assert task.retry_delay >= timedelta(seconds=1), f"{dag_id}.{task.task_id} retries with no delay"


# Clients a DAG file may import, and why: none makes a request at parse time.
ALLOWED_CLIENTS = {
    "example_pod_operator.py": {"requests": "the kubernetes client KubernetesPodOperator is built on imports it"},
}


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_do_no_heavy_work_or_io_at_import(path):
    """Importing a DAG file must not build data or touch storage: the dag-processor re-parses it constantly.
    Parse it in a fresh interpreter (after what every DAG imports anyway) and list the storage clients it pulled in."""
    probe = (
        "import sys, runpy, airflow.sdk, pandas; before = set(sys.modules);"
        f"runpy.run_path({str(path)!r});"
        "heavy = {m.split('.')[0] for m in set(sys.modules) - before} & {'azure', 'adlfs', 'fsspec', 'requests'};"
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    heavy = set(ast.literal_eval(result.stdout.strip().splitlines()[-1]))
    assert heavy <= ALLOWED_CLIENTS.get(path.name, {}).keys(), f"{path.name} imports {heavy} at parse time"


def test_the_pod_operator_example_runs_the_image_of_its_file_never_one_a_run_chooses(dagbag):
    """Whoever may trigger a run must not pick what runs in the step's pod: no image param, no templated image."""
    dag = dagbag.dags["example_pod_operator"]
    assert "image" not in dag.params
    crunch = dag.get_task("crunch")
    assert "{{" not in crunch.image
    assert crunch.image.startswith("airflow-azblob:")  # the chart's worker image, [kubernetes_executor] defaults here
