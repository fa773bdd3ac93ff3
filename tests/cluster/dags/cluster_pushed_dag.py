"""Pushed to the local cluster's Git server by tests/cluster/test_git_bundle.py: git push -> registered -> runs."""

from __future__ import annotations

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
    def hello() -> str:
        return "delivered through Git"

    hello()


cluster_pushed_dag()
