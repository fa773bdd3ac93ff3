"""The local cluster for tests/cluster: brought up once for this folder (after the images are built), the chart
deployed into it through scripts/deploy exactly as `make deploy` does, and everything torn down afterwards, with a
check that `scripts/cluster down` left nothing of the cluster on this machine.

Modules run in name order, and two depend on it: test_cluster_lifecycle.py must sort first (it brings a bare cluster
up and down before this shared one exists) and test_upgrade_and_uninstall.py last (it uninstalls the release).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.airflow_api import Api, wait_for
from scripts.devstack.services import free_port
from scripts.paths import ROOT
from tests.support.cluster import (
    PROFILES,
    RELEASE,
    LocalCluster,
    cluster_script,
    leftovers,
    machine_state,
)
from tests.support.helm import CHART, FULLNAME

pytestmark = pytest.mark.slow


@pytest.fixture(scope="package")
def cluster(built_images: dict[str, float]) -> Iterator[LocalCluster]:
    before = machine_state()
    cluster_script("up")
    try:
        yield LocalCluster()
    finally:
        cluster_script("down")
        left = leftovers(before, machine_state())
        assert not left, f"scripts/cluster down left these behind: {left}"


@dataclass
class Deployment:
    cluster: LocalCluster
    output: str  # what scripts/deploy install printed
    seconds: float

    def login(self) -> tuple[str, str]:
        """The admin login the chart generated (its SimpleAuthManager passwords Secret)."""
        secret = self.cluster.get("secret", f"{FULLNAME}-auth")
        return "admin", json.loads(base64.b64decode(secret["data"]["passwords.json"]))["admin"]

    def api(self, port: int) -> Api:
        api = Api(f"http://127.0.0.1:{port}")
        api.authenticate(*self.login())
        return api

    def upgrade(self, *args: str) -> subprocess.CompletedProcess:
        """`helm upgrade` of the release with the local cluster's profiles plus ``args``, waiting for the pods."""
        values = [arg for profile in PROFILES for arg in ("--values", str(ROOT / profile))]
        return self.cluster.helm("upgrade", RELEASE, str(CHART), *values, *args, "--wait", "--timeout", "10m")

    def push_dags(self, workdir: Path, *extra: Path) -> str:
        """`make push-dags` of the repository's dags/ plus ``extra`` DAG files (they replace what was pushed);
        returns the pushed commit (short)."""
        dags = workdir / "dags"
        shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        for path in extra:
            shutil.copy(path, dags)
        env = {**self.cluster.env, "DAGS_DIR": str(dags), "GIT_PORT": str(free_port())}
        pushed = self.cluster.deploy("push-dags", env=env)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        return re.search(r"pushing ([0-9a-f]{7,}) to ", pushed.stdout + pushed.stderr)[1]

    def push_and_register(self, api: Api, workdir: Path, dag_file: Path, dag_id: str, *, timeout: float) -> str:
        """Push dags/ plus ``dag_file``; wait until ``dag_id`` is registered from that commit (not a registration
        left over from an earlier push, not stale); returns the commit."""
        commit = self.push_dags(workdir, dag_file)

        def registered_from_the_push() -> bool:
            if not api.dag_exists(dag_id):
                return False
            dag = api.call("GET", f"/api/v2/dags/{dag_id}")
            return not dag["is_stale"] and (dag["bundle_version"] or "").startswith(commit)

        wait_for(f"{dag_id} of commit {commit} to be registered", registered_from_the_push, timeout=timeout)
        return commit


@pytest.fixture(scope="package")
def deployment(cluster: LocalCluster) -> Deployment:
    started = time.monotonic()
    done = cluster.deploy("install")
    assert done.returncode == 0, f"scripts/deploy install failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return Deployment(cluster, done.stdout + done.stderr, time.monotonic() - started)


@pytest.fixture(scope="package")
def api_port(deployment: Deployment) -> Iterator[int]:
    """The api-server, port-forwarded for the whole folder."""
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        yield port


@pytest.fixture(scope="package")
def api(deployment: Deployment, api_port: int) -> Api:
    return deployment.api(api_port)


@pytest.fixture(scope="package")
def azurite_port(deployment: Deployment) -> Iterator[int]:
    with deployment.cluster.port_forward(f"{FULLNAME}-azurite", 10000) as port:
        yield port
