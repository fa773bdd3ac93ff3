"""Helpers for running real Airflow from tests: the CLI of this venv, connection values, the metadata DB's rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scripts.devstack.services import wasb_connection

__all__ = [
    "AIRFLOW_BIN",
    "DB_CLEAN_AGE_COLUMNS",
    "XCOM_BACKEND",
    "dags_test",
    "task_instances",
    "wasb_connection",
    "xcom_rows",
]

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
XCOM_BACKEND = "include.azblob_xcom_backend.WasbXComBackend"
# The column `airflow db clean` dates each table's rows by (recency_column_name in airflow/utils/db_cleanup.py):
# a test that moves a run back in time for the cleanup changes these.
DB_CLEAN_AGE_COLUMNS = {"dag_run": "start_date", "task_instance": "start_date", "xcom": "timestamp"}


def dags_test(
    dag_id: str, dags_folder: Path, env: dict[str, str], *, conf: dict | None = None, timeout: float = 600
) -> str:
    """Run `airflow dags test <dag_id>` (every task in-process, the configured XCom backend; the run's ``conf``) and
    return its output; fail with the tail of the output when the command fails."""
    import subprocess

    result = subprocess.run(
        [str(AIRFLOW_BIN), "dags", "test", dag_id, *(["--conf", json.dumps(conf)] if conf else [])],
        env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder)},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"airflow dags test {dag_id} exited {result.returncode}:\n{output[-5000:]}")
    return output


def xcom_rows(db: Path, dag_id: str) -> dict[tuple[str, int, str], object]:
    """The XCom rows of a DAG in a SQLite metadata DB, keyed by (task_id, map_index, key), values decoded."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ?", (dag_id,))
        return {(t, m, k): json.loads(v) if isinstance(v, str) else v for t, m, k, v in rows}


def task_instances(db: Path, dag_id: str) -> dict[tuple[str, int], dict[str, str | None]]:
    """The task instances of a DAG in a SQLite metadata DB, keyed by (task_id, map_index): state and the
    rendered map index (the name a mapped instance shows in the UI)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, map_index, state, rendered_map_index FROM task_instance WHERE dag_id = ?", (dag_id,)
        )
        return {(t, m): {"state": s, "rendered_map_index": r} for t, m, s, r in rows}
