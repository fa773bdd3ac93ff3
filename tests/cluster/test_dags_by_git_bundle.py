"""dags.mode gitBundle on the local cluster (Airflow's GitDagBundle, what the local stack of `make up` runs): the
release upgraded from the kind profile's git-sync to a GitDagBundle of the same repository registers a pushed DAG at
the pushed commit, and the run is pinned to that commit down to the worker pod's checkout. The teardown upgrades back
to the profiles (git-sync)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.airflow_api import Api, run_dag, run_path
from tests.cluster.conftest import Deployment
from tests.support.cluster import PROFILES
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
PUSHED = Path(__file__).parent / "dags" / "cluster_pushed_dag.py"
DAG_ID = "cluster_pushed_dag"
REGISTERED_BOUND_S = 180  # the bundle's refresh (the profile's period), then a parse


@pytest.fixture(scope="module")
def git_bundle(deployment: Deployment) -> Iterator[Api]:
    """The release with a GitDagBundle of the repository, branch, folder and period the kind profile syncs; an API
    client through a port-forward of its own (the upgrade replaced the api-server pods the folder's one reached)."""
    sync = yaml.safe_load(PROFILES[0].read_text())["dags"]["gitSync"]
    bundle = {"repoUrl": sync["repo"], "trackingRef": sync["ref"], "subdir": sync["subPath"]}
    sets = [f"dags.gitBundle.{key}={value}" for key, value in bundle.items()]
    sets += [f"dags.gitBundle.refreshInterval={sync['period']}", "dags.mode=gitBundle"]
    try:
        deployment.upgrade(*(arg for value in sets for arg in ("--set", value)))
        with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
            yield deployment.api(port)
    finally:
        deployment.upgrade()


def test_a_pushed_dag_registers_at_the_pushed_commit_and_its_run_is_pinned_to_it(
    deployment: Deployment, git_bundle: Api, tmp_path: Path
) -> None:
    api = git_bundle
    commit = deployment.push_and_register(api, tmp_path, PUSHED, DAG_ID, timeout=REGISTERED_BOUND_S)
    run_id = run_dag(api, DAG_ID, timeout=300, interval=1)
    assert api.call("GET", run_path(DAG_ID, run_id))["bundle_version"].startswith(commit)
    xcom = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/hello/xcomEntries/return_value")["value"]
    assert xcom["message"] == "delivered through Git"
    assert f"/{commit}" in xcom["checkout"], (commit, xcom["checkout"])
