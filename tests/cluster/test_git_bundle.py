"""`make push-dags` on the local cluster (gitBundle mode): a new DAG pushed to the in-cluster Git server is
registered within a bound and runs under the KubernetesExecutor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scripts.airflow_api import Api, run_dag, run_path
from tests.cluster.conftest import Deployment

pytestmark = pytest.mark.slow
PUSHED = Path(__file__).parent / "dags" / "cluster_pushed_dag.py"
DAG_ID = "cluster_pushed_dag"
# The chart's bundle refreshes every 10 s (scripts/localcluster/values.yaml), then the file is parsed.
REGISTERED_BOUND_S = 120


def test_a_dag_pushed_to_the_git_server_is_registered_within_a_bound_and_runs(
    deployment: Deployment, api: Api, tmp_path: Path
) -> None:
    assert not api.dag_exists(DAG_ID)
    deployment.push_dags(tmp_path, PUSHED)
    started = time.monotonic()
    while not api.dag_exists(DAG_ID):
        assert time.monotonic() - started < REGISTERED_BOUND_S, f"{DAG_ID} not registered in {REGISTERED_BOUND_S} s"
        time.sleep(1)
    run_id = run_dag(api, DAG_ID, timeout=300, interval=1)
    xcom = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/hello/xcomEntries/return_value")
    assert xcom["value"] == "delivered through Git"
