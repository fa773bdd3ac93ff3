"""dags.gitSync.https.existingSecret on the local cluster: the release upgraded to sync its DAG repository over HTTP
from a server that asks for a username and password (tests/support/git_http_server.py: Git's own http-backend behind
Basic authentication, serving a mirror of the dev Git server) fetches with the credentials of a Secret. The
dag-processor's and triggerer's sidecars sync with them and a run's worker pods clone with them, while the server
refuses a fetch without them or with a wrong password. The teardown upgrades back to the profiles and deletes the
server and the Secret."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from scripts.airflow_api import Api, run_dag
from scripts.paths import ROOT
from tests.cluster.conftest import Deployment
from tests.support.cluster import PROFILES, script_service
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
SERVER = "dags-git-http"
SECRET = "dags-git-credentials"  # keys username and password, as dags.gitSync.https.existingSecret wants
PORT = 8080
USERNAME = "airflow-dags"
URL = f"http://{SERVER}:{PORT}/dags.git"
DAG_ID = "example_dataframe_pipeline"


def server_manifests(image: str, password: str) -> dict:
    credentials = [
        {"name": f"GIT_{key.upper()}", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}
        for key in ("username", "password")
    ]
    env = [
        {"name": "GIT_PROJECT_ROOT", "value": "/srv/git"},
        {"name": "GIT_MIRROR_OF", "value": yaml.safe_load(PROFILES[0].read_text())["dags"]["gitSync"]["repo"]},
        *credentials,
    ]
    script = ROOT / "tests" / "support" / "git_http_server.py"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "stringData": {"username": USERNAME, "password": password},
    }
    items = [secret, *script_service(SERVER, image, script, PORT, env=env, writable="/srv/git")]
    return {"apiVersion": "v1", "kind": "List", "items": items}


@pytest.fixture(scope="module")
def over_http(deployment: Deployment) -> Iterator[tuple[Api, str]]:
    """The release syncing from the authenticated server; an API client through a port-forward of its own (the
    upgrade may replace the api-server pods the folder's one reached) and the password."""
    cluster = deployment.cluster
    scheduler = cluster.get("deployment", f"{FULLNAME}-scheduler")
    image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    password = secrets.token_urlsafe(24)
    cluster.kubectl("apply", "--filename", "-", input=json.dumps(server_manifests(image, password)))
    try:
        cluster.kubectl("wait", "--for=condition=Ready", f"pod/{SERVER}", "--timeout=300s", timeout=320)
        deployment.upgrade("--set", f"dags.gitSync.repo={URL}", "--set", f"dags.gitSync.https.existingSecret={SECRET}")
        with cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
            yield deployment.api(port), password
    finally:
        deployment.upgrade()
        cluster.kubectl("delete", "pod,service,configmap,secret", SERVER, SECRET, "--ignore-not-found", "--wait")


def served(deployment: Deployment) -> list[str]:
    """The server's request log: `<status> <user or -> <method> <path>` lines."""
    return deployment.cluster.kubectl("logs", f"pod/{SERVER}").stdout.splitlines()


def test_the_sidecars_sync_with_the_secrets_credentials(deployment: Deployment, over_http: tuple[Api, str]) -> None:
    """helm upgrade --wait returned: each sidecar's first sync (its pod's readiness) went through the server."""
    for component in ("dag-processor", "triggerer"):
        spec = deployment.cluster.get("deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
        [sidecar] = [c for c in spec["containers"] if c["name"] == "git-sync"]
        env = {e["name"]: e.get("value") for e in sidecar["env"]}
        assert env["GITSYNC_REPO"] == URL, component
    assert f"200 {USERNAME} POST /dags.git/git-upload-pack" in served(deployment)


def test_a_runs_worker_pods_clone_with_them(deployment: Deployment, over_http: tuple[Api, str]) -> None:
    api, _ = over_http
    before = served(deployment)
    run_dag(api, DAG_ID, timeout=300, interval=1)  # each worker pod's init container cloned first
    fetched = [line for line in served(deployment)[len(before) :] if line.startswith(f"200 {USERNAME} POST")]
    assert fetched, "no authenticated fetch during the run"
    template = deployment.cluster.get("configmap", f"{FULLNAME}-pod-template")["data"]
    [worker] = [yaml.safe_load(text) for text in template.values()]
    [clone] = [c for c in worker["spec"]["initContainers"] if c["name"] == "git-sync-init"]
    env = {e["name"]: e for e in clone["env"]}
    assert env["GITSYNC_REPO"]["value"] == URL
    assert env["GITSYNC_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "password"}


def ls_remote(url: str) -> subprocess.CompletedProcess:
    """git ls-remote with no way to ask for a password (no terminal prompt, no credential helper of this machine)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", "ls-remote", url, "main"], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_the_server_refuses_a_fetch_without_them_or_with_a_wrong_password(
    deployment: Deployment, over_http: tuple[Api, str]
) -> None:
    _, password = over_http
    with deployment.cluster.port_forward(SERVER, PORT) as port:
        anonymous = ls_remote(f"http://127.0.0.1:{port}/dags.git")
        wrong = ls_remote(f"http://{USERNAME}:not-{password}@127.0.0.1:{port}/dags.git")
        right = ls_remote(f"http://{USERNAME}:{password}@127.0.0.1:{port}/dags.git")
    assert anonymous.returncode != 0, anonymous.stdout
    assert "could not read Username" in anonymous.stderr, anonymous.stderr
    assert wrong.returncode != 0, wrong.stdout
    assert "Authentication failed" in wrong.stderr, wrong.stderr
    assert right.returncode == 0, right.stderr
    assert right.stdout.split()[1:] == ["refs/heads/main"], right.stdout
