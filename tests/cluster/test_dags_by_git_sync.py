"""`make push-dags` on the local cluster in the kind profile's dags.mode gitSync: a new DAG pushed to the in-cluster
Git server is registered within a bound (git-sync's period, then a parse) and its worker pod runs it from a clone of
that commit (the pod's init container clones the branch when the pod starts), the DAG folder alone (the kind
profile's sparse checkout). With the Git server down, the dag-processor's sidecar says so in its log and restarts
while every DAG stays registered; a task started then fails in its pod's clone, which says why; once the server is
back, a push registers again and every sidecar is ready. The same for a ref the server does not have."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.airflow_api import Api, run_dag, run_path, trigger_dag, wait_for, wait_for_run
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR
from tests.cluster.conftest import Deployment
from tests.cluster.gated import component_pods

pytestmark = pytest.mark.slow
PUSHED = Path(__file__).parent / "dags" / "cluster_pushed_dag.py"
DAG_ID = "cluster_pushed_dag"
# git-sync pulls every 10 s and the dag-processor looks for new files as often (config/profiles/kind.yaml), then
# parses the new one.
REGISTERED_BOUND_S = 120
GIT_SYNC_ROOT = "/git/"  # chart/templates/_locations.tpl gitSyncRoot
GIT_SERVER = "dags-git"  # config/kind/dags-git.yaml
OUTAGE_BOUND_S = 300


def test_a_dag_pushed_to_the_git_server_is_registered_within_a_bound_and_runs_from_that_commit(
    deployment: Deployment, api: Api, tmp_path: Path
) -> None:
    assert not api.dag_exists(DAG_ID)
    beside = tmp_path / "data"
    beside.mkdir()
    (beside / "notes.txt").write_text("a file of the repository outside the DAG folder\n")
    deployment.push_folder(beside, "data")
    started = time.monotonic()
    commit = deployment.push_and_register(api, tmp_path, PUSHED, DAG_ID, timeout=REGISTERED_BOUND_S)
    deployment.measured["git_sync_push_registered_s"] = time.monotonic() - started
    assert api.call("GET", f"/api/v2/dags/{DAG_ID}")["bundle_version"] is None  # a DAG folder, not a bundle
    run_id = run_dag(api, DAG_ID, timeout=300, interval=1)
    xcom = api.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/hello/xcomEntries/return_value")["value"]
    assert xcom["message"] == "delivered through Git"
    checkout = xcom["checkout"]
    assert checkout.startswith(GIT_SYNC_ROOT), checkout
    assert f"/{commit}" in checkout, (commit, checkout)
    # The kind profile's sparseCheckout: data/ is in the repository, and in neither the worker's nor the
    # dag-processor's checkout.
    assert xcom["repository"] == ["dags"], xcom
    [name] = component_pods(deployment, "dag-processor").values()
    listed = deployment.cluster.kubectl(
        "exec", name, "--container", "dag-processor", "--", "ls", f"{GIT_SYNC_ROOT}repo"
    )
    assert listed.stdout.split() == ["dags"], listed.stdout


@pytest.fixture
def git_server_down(deployment: Deployment) -> Iterator[None]:
    """The in-cluster Git server scaled to no pod (its repository stays on its volume); scaled back afterwards, and
    the failed worker pods of the outage (the executor keeps them) deleted: the uninstall test counts what is left."""
    cluster = deployment.cluster
    cluster.kubectl("scale", f"deployment/{GIT_SERVER}", "--replicas=0")
    try:
        selector = f"app.kubernetes.io/name={GIT_SERVER}"
        cluster.kubectl("wait", "--for=delete", "pod", "--selector", selector, "--timeout=120s", timeout=140)
        yield
    finally:
        cluster.kubectl("scale", f"deployment/{GIT_SERVER}", "--replicas=1")
        cluster.kubectl("rollout", "status", f"deployment/{GIT_SERVER}", "--timeout=180s", timeout=200)
        cluster.kubectl("delete", "pods", "--selector", f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}", "--wait")


def sidecar_restarts(deployment: Deployment) -> int:
    [name] = component_pods(deployment, "dag-processor").values()
    statuses = deployment.cluster.get("pod", name)["status"]["containerStatuses"]
    return next(s["restartCount"] for s in statuses if s["name"] == "git-sync")


def assert_gave_up_naming_the_server(log: str) -> None:
    assert "too many failures, aborting" in log, log[-2000:]
    assert GIT_SERVER in log, log[-2000:]


def wait_until_every_sidecar_is_ready(deployment: Deployment) -> None:
    """Each git-sync sidecar out of its restart back-off, its pod Ready."""
    for component in ("dag-processor", "triggerer"):
        pods = [f"pod/{name}" for name in component_pods(deployment, component).values()]
        deployment.cluster.kubectl("wait", "--for=condition=Ready", *pods, "--timeout=300s", timeout=320)


def active_dags(api: Api) -> set[str]:
    return {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"] if not d["is_stale"]}


def test_with_the_git_server_down_the_dags_stay_and_a_new_task_fails_in_its_clone_saying_why(
    deployment: Deployment, api: Api, git_server_down: None
) -> None:
    cluster = deployment.cluster
    before, restarts = active_dags(api), sidecar_restarts(deployment)
    assert DAG_ID in before
    # git-sync retries every period and exits after maxFailures (3) in a row: the kubelet restarts it.
    wait_for("the dag-processor's git-sync to give up", lambda: sidecar_restarts(deployment) > restarts,
             timeout=OUTAGE_BOUND_S, interval=2)  # fmt: skip
    [name] = component_pods(deployment, "dag-processor").values()
    said = cluster.kubectl("logs", name, "--container", "git-sync", "--previous").stdout
    assert_gave_up_naming_the_server(said)
    assert active_dags(api) == before  # the last checkout stays and is parsed: nothing deactivated

    selector = f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}"
    run_id = trigger_dag(api, DAG_ID)
    assert wait_for_run(api, DAG_ID, run_id, timeout=OUTAGE_BOUND_S) == "failed"
    [pod] = cluster.get("pods", "--selector", selector)["items"]  # kept: the executor keeps failed pods
    [clone] = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "git-sync-init"]
    assert clone["state"]["terminated"]["exitCode"] != 0, json.dumps(clone)
    logs = cluster.kubectl("logs", pod["metadata"]["name"], "--container", "git-sync-init").stdout
    assert_gave_up_naming_the_server(logs)


def test_once_the_git_server_is_back_a_push_registers_again(deployment: Deployment, api: Api, tmp_path: Path) -> None:
    """After the outage above: the sidecar, restarted by the kubelet with its back-off, syncs again. The pushed file
    differs from the registered one by a comment, so only a new sync can register it."""
    changed = tmp_path / PUSHED.name
    changed.write_text(PUSHED.read_text() + f"# pushed after the Git server came back at {time.time()}\n")
    started = time.monotonic()
    deployment.push_and_register(api, tmp_path / "push", changed, DAG_ID, timeout=OUTAGE_BOUND_S)
    deployment.measured["git_sync_back_push_registered_s"] = time.monotonic() - started
    wait_until_every_sidecar_is_ready(deployment)


@pytest.fixture
def branch_deleted(deployment: Deployment) -> Iterator[None]:
    """Branch main deleted in the Git server's repository: the ref every sidecar and worker pod syncs no longer
    resolves (what a mistyped dags.gitSync.ref meets). Put back afterwards at the same commit."""

    def git(*args: str) -> str:
        repository = "/srv/git/dags.git"  # config/kind/dags-git.yaml
        argv = ("exec", f"deployment/{GIT_SERVER}", "--", "git", "--git-dir", repository, *args)
        return deployment.cluster.kubectl(*argv).stdout.strip()

    commit = git("rev-parse", "refs/heads/main")
    git("update-ref", "-d", "refs/heads/main")
    try:
        yield
    finally:
        git("update-ref", "refs/heads/main", commit)


def test_a_ref_the_server_does_not_have_fails_in_the_sidecar_naming_it_and_the_dags_stay(
    deployment: Deployment, api: Api, branch_deleted: None
) -> None:
    before, restarts = active_dags(api), sidecar_restarts(deployment)
    wait_for("the dag-processor's git-sync to give up on ref main", lambda: sidecar_restarts(deployment) > restarts,
             timeout=OUTAGE_BOUND_S, interval=2)  # fmt: skip
    [name] = component_pods(deployment, "dag-processor").values()
    said = deployment.cluster.kubectl("logs", name, "--container", "git-sync", "--previous").stdout
    assert "too many failures, aborting" in said, said[-2000:]
    assert "couldn't find remote ref main" in said, said[-2000:]
    assert active_dags(api) == before


def test_once_the_ref_is_back_every_sidecar_is_ready_again(deployment: Deployment) -> None:
    """After the test above put branch main back: each sidecar syncs again, out of its restart back-off."""
    wait_until_every_sidecar_is_ready(deployment)
