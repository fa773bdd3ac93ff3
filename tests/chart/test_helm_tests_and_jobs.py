"""helm test hooks and Jobs: their scripts run here for real (Azurite, a local HTTP server) with the env the
chart gives them, so what `helm test` runs in the cluster is known to work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from scripts.devstack.services import Azurite
from scripts.paths import ROOT
from tests.support.airflow import wasb_connection
from tests.support.helm import FULLNAME, Manifest, env_of, render


def hook_pods(manifest: Manifest) -> dict[str, dict]:
    return {
        p["metadata"]["name"].removeprefix(f"{FULLNAME}-test-"): p
        for p in manifest.of_kind("Pod")
        if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }


def test_helm_test_checks_api_server_execution_api_and_xcom_round_trip(defaults: Manifest) -> None:
    pods = hook_pods(defaults)
    assert set(pods) == {"api-server-health", "execution-api-health", "xcom-roundtrip"}
    api_args = pods["api-server-health"]["spec"]["containers"][0]["args"]
    assert api_args[3] == f"http://{FULLNAME}-api-server:8080/api/v2/monitor/health"
    exec_args = pods["execution-api-health"]["spec"]["containers"][0]["args"]
    assert exec_args[3:] == [f"http://{FULLNAME}-api-server:8080/execution/health", "status=healthy"]
    for pod in pods.values():
        # Kept until the next run, so `helm test --logs` can read it on every Helm 3 release.
        assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"


def run_pod_script(container: dict, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a rendered container's `python -c <script> args...` with this venv's python and the given env."""
    args = container["args"]
    assert args[:2] == ["python", "-c"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", args[2], *args[3:]],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def literal_env(container: dict) -> dict[str, str]:
    """Plain env values of a container, minus paths of the image (the repository root stands in for /opt/airflow)."""
    skip = ("AIRFLOW_", "PYTHONPATH")
    return {k: v for k, v in env_of(container).items() if isinstance(v, str) and not k.startswith(skip)}


def test_xcom_round_trip_test_passes_against_azurite_with_the_rendered_airflow_cfg(
    defaults: Manifest, azurite: Azurite, airflow_home, tmp_path
) -> None:
    container = hook_pods(defaults)["xcom-roundtrip"]["spec"]["containers"][0]
    assert env_of(container)["AIRFLOW__CORE__XCOM_BACKEND"] == "include.azblob_xcom_backend.WasbXComBackend"
    rendered_cfg = tmp_path / "airflow.cfg"
    rendered_cfg.write_text(defaults.airflow_cfg())
    env = {
        **literal_env(container),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_CONFIG": str(rendered_cfg),
        "AIRFLOW__CORE__XCOM_BACKEND": env_of(container)["AIRFLOW__CORE__XCOM_BACKEND"],
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": f"helmtest-{uuid.uuid4().hex[:8]}",
    }
    done = run_pod_script(container, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "XCom round trip through include.azblob_xcom_backend.WasbXComBackend: ok" in done.stdout


def test_create_containers_job_creates_containers_idempotently(
    defaults: Manifest, azurite: Azurite, airflow_home
) -> None:
    from azure.storage.blob import BlobServiceClient

    container = defaults.get("Job", "create-containers-1")["spec"]["template"]["spec"]["containers"][0]
    names = [f"logs-{uuid.uuid4().hex[:8]}", f"xcom-{uuid.uuid4().hex[:8]}"]
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "BLOB_CONN_ID": env_of(container)["BLOB_CONN_ID"],
        "BLOB_CONTAINERS": ",".join(names),
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
    }
    for _ in range(2):
        done = run_pod_script(container, env)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "already exists" in done.stdout
    existing = {c.name for c in BlobServiceClient.from_connection_string(azurite.connection_string).list_containers()}
    assert set(names) <= existing


class _Health(BaseHTTPRequestHandler):
    bodies: ClassVar[dict[str, dict]] = {
        "/api/v2/monitor/health": {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}},
        "/execution/health": {"status": "healthy"},
    }

    def do_GET(self) -> None:
        body = self.bodies.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {"detail": "Not Found"}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("test_name", ["api-server-health", "execution-api-health"])
def test_health_tests_pass_against_healthy_endpoints(fake_api: str, test_name: str) -> None:
    manifest = render({"apiServer.internalUrl": fake_api})
    done = run_pod_script(hook_pods(manifest)[test_name]["spec"]["containers"][0], {})
    assert done.returncode == 0, done.stderr


def test_api_server_health_test_fails_naming_an_unhealthy_field(fake_api: str, monkeypatch) -> None:
    monkeypatch.setitem(_Health.bodies, "/api/v2/monitor/health", {"metadatabase": {"status": "unhealthy"}})
    manifest = render({"apiServer.internalUrl": fake_api})
    done = run_pod_script(hook_pods(manifest)["api-server-health"]["spec"]["containers"][0], {})
    assert done.returncode != 0
    assert "metadatabase.status is 'unhealthy'" in done.stderr


def test_db_migrate_is_a_plain_job_named_per_revision_and_components_wait_for_it(defaults: Manifest) -> None:
    job = defaults.get("Job", "db-migrate-1")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["python", "-m", "include.db_migrate", "migrate"]
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        init = defaults.get("Deployment", name)["spec"]["template"]["spec"]["initContainers"][0]
        assert init["name"] == "wait-for-migrations"
        assert init["args"][:4] == ["python", "-m", "include.db_migrate", "check-migrations"]


def test_api_server_gets_a_writable_copy_of_the_passwords_file(defaults: Manifest) -> None:
    spec = defaults.get("Deployment", "api-server")["spec"]["template"]["spec"]
    copy = next(c for c in spec["initContainers"] if c["name"] == "copy-passwords")
    assert "/opt/airflow/auth/passwords.json" in copy["args"][-1]
    auth = next(v for v in spec["volumes"] if v["name"] == "auth")
    assert auth == {"name": "auth", "emptyDir": {"sizeLimit": "1Mi"}}
    assert "simple_auth_manager_passwords_file = /opt/airflow/auth/passwords.json" in defaults.airflow_cfg()


def cleanup_container(manifest: Manifest) -> dict:
    cronjob = manifest.get("CronJob", "db-cleanup")
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def test_db_cleanup_cronjob_runs_include_db_cleanup_with_the_values_settings(defaults: Manifest) -> None:
    from include.db_cleanup import parser

    cronjob = defaults.get("CronJob", "db-cleanup")
    assert cronjob["spec"]["schedule"] == "17 3 * * *"
    assert cronjob["spec"]["timeZone"] == "UTC"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "wait-for-migrations"
    args = cleanup_container(defaults)["args"]
    assert args[:3] == ["python", "-m", "include.db_cleanup"]
    parsed = parser().parse_args(args[3:])  # the CLI accepts what the chart renders
    assert (parsed.retention_days, parsed.xcom_blob_grace_hours, parsed.max_blob_deletions) == (90, 24, 10_000)
    assert (parsed.batch_size, parsed.dry_run) == (None, False)
    env = env_of(cleanup_container(defaults))
    assert {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_CONN_WASB_DEFAULT"} <= set(env)


def test_db_cleanup_values_reach_its_command_and_it_can_be_turned_off() -> None:
    from include.db_cleanup import parser

    tuned = render(
        {
            "jobs.dbCleanup.retentionDays": 30.5,
            "jobs.dbCleanup.xcomBlobGraceHours": 0,
            "jobs.dbCleanup.maxBlobDeletions": 500,
            "jobs.dbCleanup.batchSize": 1000,
            "jobs.dbCleanup.dryRun": True,
            "jobs.dbCleanup.schedule": "0 1 * * 0",
            "timezone": "Asia/Seoul",
        }
    )
    parsed = parser().parse_args(cleanup_container(tuned)["args"][3:])
    assert (parsed.retention_days, parsed.xcom_blob_grace_hours, parsed.max_blob_deletions) == (30.5, 0, 500)
    assert (parsed.batch_size, parsed.dry_run) == (1000, True)
    cronjob = tuned.get("CronJob", "db-cleanup")
    assert (cronjob["spec"]["schedule"], cronjob["spec"]["timeZone"]) == ("0 1 * * 0", "Asia/Seoul")
    own_zone = render({"timezone": "Asia/Seoul", "jobs.dbCleanup.timeZone": "Etc/UTC"})
    assert own_zone.get("CronJob", "db-cleanup")["spec"]["timeZone"] == "Etc/UTC"
    assert not render({"jobs.dbCleanup.enabled": False}).has("CronJob", "db-cleanup")


def test_db_cleanup_cronjob_name_fits_kubernetes_limit_for_any_release_name() -> None:
    long = render({"fullnameOverride": "a-release-name-that-is-quite-long-indeed-x"})
    (cronjob,) = long.of_kind("CronJob")
    assert len(cronjob["metadata"]["name"]) <= 52
    assert cronjob["metadata"]["name"].endswith("-db-cleanup")
    assert render({"jobs.dbCleanup.schedule": "@daily"}).get("CronJob", "db-cleanup")["spec"]["schedule"] == "@daily"
