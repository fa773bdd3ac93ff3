"""Pushed to the local cluster's Git server by tests/cluster/test_dags_by_git_sync.py and test_dags_by_git_bundle.py:
git push -> registered -> runs. The task returns where its file was checked out: both git-sync (a worktree per commit
behind the link) and GitDagBundle (a folder per version) name the commit in that path; and what the repository's
checkout holds beside the DAG folder."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="cluster_pushed_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def cluster_pushed_dag() -> None:
    @task
    def hello() -> dict[str, str | list[str]]:
        checkout = Path(__file__).resolve().parent
        beside = sorted(path.name for path in checkout.parent.iterdir() if not path.name.startswith("."))
        return {"message": "delivered through Git", "checkout": str(checkout), "repository": beside}

    hello()


cluster_pushed_dag()
