"""The local cluster for tests/cluster: brought up once for this folder (after the images are built), the chart
deployed into it through scripts/deploy exactly as `make deploy` does, and everything torn down afterwards, with a
check that `scripts/localcluster/cluster down` left nothing of the cluster on this machine.

Seven modules depend on where they run, and pytest_collection_modifyitems below puts them there whatever their
names: test_cluster_lifecycle.py first (it brings a bare cluster up and down before this shared one exists),
test_production_surface.py (whose DAGs register through the folder's port-forward to the api-server, before any
module replaced it), test_fast_lane.py, test_sign_in_with_oidc.py, test_metrics.py and test_dags_by_git_bundle.py
after the rest (each rolls pods into another shape of the release and back, the api-server among them: the folder's
port-forward to it is gone afterwards), and test_upgrade_and_uninstall.py last (it uninstalls the release).
The others run in name order between them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from tests.support.usage import UsageSampler

pytestmark = pytest.mark.slow
REPORT_ENV = "CLUSTER_SUITE_REPORT"

HERE = Path(__file__).parent
FIRST = ("test_cluster_lifecycle.py",)
LAST = (
    "test_production_surface.py",
    "test_fast_lane.py",
    "test_sign_in_with_oidc.py",
    "test_metrics.py",
    "test_dags_by_git_bundle.py",
    "test_upgrade_and_uninstall.py",
)


def module_rank(name: str) -> int:
    """Where a module of this folder runs: FIRST ones before the rest, LAST ones after, in the order listed."""
    if name in FIRST:
        return FIRST.index(name) - len(FIRST)
    if name in LAST:
        return 1 + LAST.index(name)
    return 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order this folder's tests by module_rank (stable: name order within a rank), in the places they were
    collected in, so the rest of the session keeps its order."""
    slots = [i for i, item in enumerate(items) if item.path.parent == HERE]
    ordered = sorted((items[i] for i in slots), key=lambda item: module_rank(item.path.name))
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


@pytest.fixture(scope="package")
def cluster(built_images: dict[str, float]) -> Iterator[LocalCluster]:
    before = machine_state()
    cluster_script("up")
    try:
        yield LocalCluster()
    finally:
        cluster_script("down")
        left = leftovers(before, machine_state())
        assert not left, f"scripts/localcluster/cluster down left these behind: {left}"


@dataclass
class Deployment:
    cluster: LocalCluster
    output: str  # what scripts/deploy install printed
    seconds: float
    # What modules measure on the way (seconds, counts), for scripts/bench_cluster_suite.py's report.
    measured: dict[str, float] = field(default_factory=dict)

    def login(self) -> tuple[str, str]:
        """The admin login the chart generated (its SimpleAuthManager passwords Secret)."""
        secret = self.cluster.get("secret", f"{FULLNAME}-auth")
        return "admin", json.loads(base64.b64decode(secret["data"]["passwords.json"]))["admin"]

    def api(self, port: int) -> Api:
        api = Api(f"http://127.0.0.1:{port}")
        api.authenticate(*self.login())
        return api

    def api_servers_settled(self, count: int) -> bool:
        """``count`` Ready api-server pods of the Deployment's current revision, none of an earlier one left (not even
        stopping), and this node's kube-proxy routing the Service to these pods alone. `helm upgrade --wait` returns
        once the new pods are Ready, while a pod of the previous revision still serves through its preStop sleep
        (with another base_url: POST /airflow/auth/token answered 405 through the ingress, a REST call the UI's
        HTML), kube-proxy drops it seconds after its endpoint turns terminating, and `kubectl port-forward svc/...`
        may pick it."""
        name = f"{FULLNAME}-api-server"
        state = self.cluster.get(f"deployment/{name}")
        status = state["status"]
        counts = (status.get("replicas"), status.get("updatedReplicas"), status.get("readyReplicas"))
        if status.get("observedGeneration") != state["metadata"]["generation"] or counts != (count,) * 3:
            return False
        selector = f"app.kubernetes.io/component=api-server,app.kubernetes.io/instance={RELEASE}"
        pods = self.cluster.get("pods", "--selector", selector)["items"]
        if len(pods) != count or any(pod["metadata"].get("deletionTimestamp") for pod in pods):
            return False
        return self.cluster.routed_addresses(name) == {pod["status"].get("podIP") for pod in pods}

    def upgrade(self, *args: str) -> subprocess.CompletedProcess:
        """`helm upgrade` of the release with the local cluster's profiles plus ``args``, waiting for the pods."""
        values = [arg for profile in PROFILES for arg in ("--values", str(profile))]
        return self.cluster.helm("upgrade", RELEASE, str(CHART), *values, *args, "--wait", "--timeout", "10m")

    def push_dags(self, workdir: Path, *extra: Path) -> str:
        """`make push-dags` of the repository's dags/ plus ``extra`` DAG files (they replace what was pushed);
        returns the pushed commit (short)."""
        dags = workdir / "dags"
        shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        for path in extra:
            shutil.copy(path, dags)
        return self.push_folder(dags, "dags")

    def push_folder(self, folder: Path, subdir: str) -> str:
        """`make push-dags` of ``folder`` as ``subdir`` of the repository (the rest of it stays); returns the commit."""
        env = {**self.cluster.env, "DAGS_DIR": str(folder), "DAGS_SUBDIR": subdir, "GIT_PORT": str(free_port())}
        pushed = self.cluster.deploy("push-dags", env=env)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        return re.search(r"pushing ([0-9a-f]{7,}) to ", pushed.stdout + pushed.stderr)[1]

    def push_and_register(self, api: Api, workdir: Path, dag_file: Path, dag_id: str, *, timeout: float) -> str:
        """Push dags/ plus ``dag_file``; wait until ``dag_id`` is registered from that commit (not a registration
        left over from an earlier push, not stale); returns the commit."""
        return self.push_and_register_all(api, workdir, {dag_id: dag_file}, timeout=timeout)

    def push_and_register_all(self, api: Api, workdir: Path, dags: dict[str, Path], *, timeout: float) -> str:
        """Push dags/ plus every file of ``dags`` (dag_id -> file); wait until each is registered from that push:
        not stale, and parsed from that commit (GitDagBundle's version) or, in git-sync mode, where a DAG folder has
        no version, with that file's text (a registration of the same text from an earlier push counts too)."""
        commit = self.push_dags(workdir, *dags.values())

        def registered_from_the_push(dag_id: str, source: str) -> bool:
            if not api.dag_exists(dag_id):
                return False
            dag = api.call("GET", f"/api/v2/dags/{dag_id}")
            if dag["is_stale"]:
                return False
            if dag["bundle_version"]:
                return dag["bundle_version"].startswith(commit)
            return api.call("GET", f"/api/v2/dagSources/{dag_id}")["content"] == source

        for dag_id, path in dags.items():
            source = path.read_text()
            wait_for(
                f"{dag_id} of commit {commit} to be registered",
                lambda dag_id=dag_id, source=source: registered_from_the_push(dag_id, source),
                timeout=timeout,
            )
        return commit


@pytest.fixture(scope="package")
def deployment(cluster: LocalCluster) -> Iterator[Deployment]:
    """The chart installed by scripts/deploy. Every container's resource use is sampled from the node's cgroups
    until the folder ends; with $CLUSTER_SUITE_REPORT set, that and what the modules measured are written there as
    JSON (scripts/bench_cluster_suite.py)."""
    sampler = UsageSampler(lambda: cluster.get("pods", "--all-namespaces")["items"])
    sampler.start()
    started = time.monotonic()
    done = cluster.deploy("install")
    assert done.returncode == 0, f"scripts/deploy install failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    deployment = Deployment(cluster, done.stdout + done.stderr, time.monotonic() - started)
    yield deployment
    sampler.stop()
    if report := os.environ.get(REPORT_ENV):
        data = {"install_seconds": deployment.seconds, "measured": deployment.measured, "usage": sampler.summary()}
        Path(report).write_text(json.dumps(data, indent=2) + "\n")


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
