"""`make deploy` on the local cluster: the chart installs with --wait, its Jobs complete, `helm test` passes with its
logs shown, and the generated admin password logs in through a port-forward."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.cluster.conftest import Deployment
from tests.support.cluster import RELEASE

pytestmark = pytest.mark.slow
HELM_TESTS = ("api-server-health", "execution-api-health", "xcom-roundtrip")


def test_every_deployment_and_statefulset_is_ready(deployment: Deployment) -> None:
    workloads = deployment.cluster.get(
        "deployments,statefulsets", "--selector", f"app.kubernetes.io/instance={RELEASE}"
    )
    names = set()
    for workload in workloads["items"]:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        names.add(name.rsplit("-", 1)[-1])
        assert workload["status"].get("readyReplicas") == workload["spec"]["replicas"], name
    assert {"server", "scheduler", "processor", "triggerer", "azurite", "postgresql"} <= names


def test_the_migration_and_container_jobs_of_the_release_completed(deployment: Deployment) -> None:
    jobs = deployment.cluster.get("jobs", "--selector", f"app.kubernetes.io/instance={RELEASE}")["items"]
    by_component = {job["metadata"]["labels"]["app.kubernetes.io/component"]: job for job in jobs}
    for component in ("db-migrate", "create-containers"):
        assert by_component[component]["status"].get("succeeded") == 1, component


def test_helm_test_passed_and_its_logs_were_shown(deployment: Deployment) -> None:
    output = deployment.output
    assert "Phase:          Succeeded" in output
    assert "Phase:          Failed" not in output
    for name in HELM_TESTS:
        assert f"POD LOGS: airflow-airflow-azblob-test-{name}" in output
    assert "XCom round trip through include.azblob_xcom_backend.WasbXComBackend: ok" in output
    leftover = deployment.cluster.get("pods", "--selector", "app.kubernetes.io/component=test")["items"]
    assert not leftover, "scripts/deploy removes the test pods after showing their logs"


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


def test_the_generated_admin_password_logs_in_through_a_port_forward(deployment: Deployment, api_port: int) -> None:
    user, password = deployment.login()
    status, answer = post_json(f"http://127.0.0.1:{api_port}/auth/token", {"username": user, "password": password})
    assert status == 201
    request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v2/dags")
    request.add_header("Authorization", f"Bearer {answer['access_token']}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    wrong, _ = post_json(f"http://127.0.0.1:{api_port}/auth/token", {"username": user, "password": password + "x"})
    assert wrong == 401
