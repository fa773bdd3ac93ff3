"""Failure alerts on the local cluster: `alerts.webhook.existingSecret` reaches the worker pods and the scheduler, and
their messages reach a receiver inside the cluster.

A receiver pod (tests/support/webhook_receiver.py run by the Airflow image, behind a Service) records what it is
sent; a Secret holds its URL; `helm upgrade` names that Secret and lets the task pods reach the receiver
(networkPolicies.workerEgress.extra: the local cluster enforces the chart's policies). alerts_fixture
(tests/plugins/dags) then runs: always_fails fails both of its tries, fails_once fails its first try and succeeds
on the retry, succeeds succeeds, and the run fails. Each failed try alerts once from its worker pod and the failed
run once from the scheduler. Then the receiver is deleted and the DAG runs again: the same task states, and each
failed try's log says its alert was not delivered. The teardown upgrades back to the profiles' values and deletes
the receiver and the Secret.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scripts.airflow_api import Api, run_path, task_instances, trigger_dag, wait_for, wait_for_run
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodWatch
from scripts.paths import ROOT
from tests.cluster.conftest import Deployment
from tests.plugins.dags.alerts_fixture import ALERT_TITLES, STATES
from tests.support.cluster import NAMESPACE, script_service
from tests.support.helm import FULLNAME
from tests.support.webhook_receiver import titles

pytestmark = pytest.mark.slow
DAG_ID = "alerts_fixture"
DAG_FILE = ROOT / "tests" / "plugins" / "dags" / "alerts_fixture.py"
RECEIVER = "alert-receiver"
SECRET = "alert-webhook"
PORT = 8080
BOUND_S = 600


def receiver_manifests(image: str) -> dict[str, Any]:
    url = f"http://{RECEIVER}.{NAMESPACE}.svc.cluster.local:{PORT}/hooks/alerts"
    receiver = script_service(RECEIVER, image, ROOT / "tests" / "support" / "webhook_receiver.py", PORT)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "stringData": {"url": url}}
    return {"apiVersion": "v1", "kind": "List", "items": [*receiver, secret]}


# The task pods' egress policy (the local cluster enforces it) lets them reach the webhook's host, as a user's values
# must: its address is in a Secret the chart does not read.
RECEIVER_EGRESS = "networkPolicies.workerEgress.extra=" + json.dumps([{
    "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": RECEIVER}}}],
    "ports": [{"port": PORT, "protocol": "TCP"}],
}])  # fmt: skip


@dataclass
class Alerted:
    run_id: str
    states: dict[str, str]
    messages: list[dict[str, Any]]


def received(deployment: Deployment) -> list[dict[str, Any]]:
    with (
        deployment.cluster.port_forward(RECEIVER, PORT) as port,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=10) as answer,
    ):
        return [request["body"] for request in json.loads(answer.read())]


def run_fixture(deployment: Deployment, api: Api) -> tuple[str, dict[str, str]]:
    """Run alerts_fixture to its end and until each try's worker pod has finished: a try's log reaches Blob when its
    pod ends, which can be after the run has (a failed try reports its state, then alerts, then uploads its log
    while the retry already runs). A failed try's pod ends Succeeded (the task failed, not the pod) and is deleted."""
    with PodWatch(deployment.cluster.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        run_id = trigger_dag(api, DAG_ID)
        state = wait_for_run(api, DAG_ID, run_id, timeout=BOUND_S)
        assert state == "failed", f"run {run_id} ended {state}"
        ended = time.monotonic()
        tis = task_instances(api, DAG_ID, run_id)
        watch.wait_until_settled(count=sum(ti["try_number"] for ti in tis.values()), timeout=BOUND_S)
        print(f"    worker pods settled {time.monotonic() - ended:.1f} s after the run was seen to end")
    return run_id, {task: ti["state"] for task, ti in tis.items()}


@pytest.fixture(scope="module")
def alerts_on(deployment: Deployment, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    cluster = deployment.cluster
    scheduler = cluster.get("deployment", f"{FULLNAME}-scheduler")
    image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    cluster.kubectl("apply", "--filename", "-", input=json.dumps(receiver_manifests(image)))
    try:
        cluster.kubectl("wait", "--for=condition=Ready", f"pod/{RECEIVER}", "--timeout=300s", timeout=320)
        deployment.upgrade("--set", f"alerts.webhook.existingSecret={SECRET}", "--set-json", RECEIVER_EGRESS)
        deployment.push_and_register(api, tmp_path_factory.mktemp("dags"), DAG_FILE, DAG_ID, timeout=BOUND_S)
        yield api
    finally:
        deployment.upgrade()
        cluster.kubectl("delete", "pod,service,configmap,secret", RECEIVER, SECRET, "--ignore-not-found", "--wait")


@pytest.fixture(scope="module")
def alerted(deployment: Deployment, alerts_on: Api) -> Alerted:
    run_id, states = run_fixture(deployment, alerts_on)
    # The task pods send before they exit; the scheduler's run alert follows the run's end within moments.

    def all_arrived() -> list[dict[str, Any]] | None:
        found = received(deployment)
        return found if len(found) >= len(ALERT_TITLES) else None

    messages = wait_for(f"{len(ALERT_TITLES)} alerts at the receiver", all_arrived, timeout=120)
    return Alerted(run_id, states, messages)


def test_each_failed_try_alerts_once_from_its_pod_and_the_failed_run_once_from_the_scheduler(alerted):
    assert alerted.states == STATES
    assert titles(alerted.messages) == ALERT_TITLES


def test_the_alerts_name_the_run_the_try_and_the_error(alerted):
    final = next(m for m in alerted.messages if m["text"].startswith("Task failed"))
    text = final["text"].splitlines()
    assert f"Run: {alerted.run_id}" in text, text
    assert "Try: 2 of 2" in text, text
    assert "ValueError: no rows in <input> & nothing to load" in text, text
    assert text[-1].startswith("Log: "), text
    assert text[-1].endswith("/tasks/always_fails?try_number=2"), text


def test_a_receiver_that_is_down_changes_no_task_state(deployment: Deployment, alerted, alerts_on: Api):
    assert titles(received(deployment)) == ALERT_TITLES  # still exactly one each, minutes after the run
    deployment.cluster.kubectl("delete", "pod", RECEIVER, "--wait")
    run_id, states = run_fixture(deployment, alerts_on)
    assert states == STATES
    for task, attempt in (("always_fails", 1), ("always_fails", 2), ("fails_once", 1)):
        log = alerts_on.call("GET", f"{run_path(DAG_ID, run_id)}/taskInstances/{task}/logs/{attempt}?full_content=true")
        assert f"Failure alert for {DAG_ID}.{task} try {attempt} NOT delivered to {RECEIVER}" in json.dumps(
            log["content"]
        ), (task, attempt)
