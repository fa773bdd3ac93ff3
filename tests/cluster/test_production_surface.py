"""The release in its production shape on the local cluster, then back: what docs/chart.md promises for exposure, high
availability, autoscaling and extension points, against the real thing.

* An Ingress, served by a real reverse proxy (Debian's nginx configured from the cluster's Ingress objects,
  tests/support/ingress.py: no ingress controller builds here), carries the login, a REST call and the UI page at the
  root, then at a base_url sub-path; the apiserver accepts the HTTPRoute (Gateway API CRDs installed).
* Two schedulers, two triggerers and an api-server HorizontalPodAutoscaler (min 2): the autoscaler brings the
  api-server to two pods; a scheduler deleted mid-run leaves the survivor to finish the run with every task run once;
  the api-server rolled while a run is in flight fails no task and no REST request made through the ingress; the
  PodDisruptionBudget lets a drain evict one scheduler but not the second; a deferred task resumes after a trigger one
  of the triggerers ran.
* workers.extraVolumes mounts a ConfigMap made by extraObjects into every worker pod, and a task reads it.

Every change is one `helm upgrade` of the release with the local cluster's profiles plus a values file, and the
module ends with the profiles alone again (the modules after it expect them).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from urllib.parse import urljoin

import pytest
import yaml

from scripts.airflow_api import Api, ApiError, run_path, task_instances, trigger_dag, wait_for, wait_for_run
from scripts.devstack.services import free_port
from scripts.paths import GATEWAY_API_CRDS
from tests.cluster.conftest import Deployment
from tests.cluster.gated import (
    DAG_ID as FAULT_DAG_ID,
)
from tests.cluster.gated import (
    EVERY_TASK_ONCE,
    FAULT_DAG,
    REGISTERED_BOUND_S,
    ROLLOUT_BOUND_S,
    RUN_BOUND_S,
    component_pods,
    finish,
    release,
    start_gated_run,
)
from tests.support.cluster import RELEASE
from tests.support.helm import FULLNAME
from tests.support.ingress import NginxIngress, nginx_ingress

pytestmark = pytest.mark.slow
PRODUCTION_DAG = Path(__file__).parent / "dags" / "cluster_production_dag.py"
PRODUCTION_DAG_ID = "cluster_production_dag"
SUB_PATH = "/airflow"
TEAM_DATA = "mounted from a ConfigMap through workers.extraVolumes\n"
ROUTE_CRD = "gateway.networking.k8s.io_httproutes.yaml"
TAKEOVER_BOUND_S = 30  # the survivor schedules as it always does
ADOPTION_BOUND_S = 240  # [scheduler] orphaned_tasks_check_interval (60 s) plus the run's end
LATENCY_CALLS = 100


def production_values(port: int) -> dict:
    """The release's production shape; base_url names the port the test's ingress listens on."""
    team_config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "{{ .Release.Name }}-team-config"},
        "data": {"team.txt": TEAM_DATA},
    }
    return {
        "config": {"api": {"base_url": f"http://localhost:{port}{SUB_PATH}/"}},
        "ingress": {"enabled": True},
        "httpRoute": {"enabled": True, "parentRefs": [{"name": "shared-gateway", "namespace": "gateways"}]},
        "apiServer": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 3}},
        "scheduler": {"replicas": 2},
        "triggerer": {"replicas": 2},
        "workers": {
            "extraVolumes": [{"name": "team-config", "configMap": {"name": "{{ .Release.Name }}-team-config"}}],
            "extraVolumeMounts": [{"name": "team-config", "mountPath": "/opt/team", "readOnly": True}],
        },
        "extraObjects": [team_config],
    }


@dataclass
class Production:
    ingress: NginxIngress
    api: Api  # through the ingress, at the sub-path
    values: Path

    @property
    def base(self) -> str:
        return f"http://localhost:{self.ingress.port}{SUB_PATH}"


def serve_ingress(deployment: Deployment, port: int | None = None):
    """nginx configured from the release's Ingress objects as they are now."""
    ingresses = deployment.cluster.get("ingress")["items"]
    return nginx_ingress(ingresses, lambda name: deployment.cluster.get("service", name), port)


def fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode(errors="replace")


def assert_airflow_through(base: str, login: tuple[str, str]) -> None:
    """The login page, a token, a REST call and the UI page (with an asset it loads) answer at ``base``."""
    status, kind, page = fetch(f"{base}/auth/login")
    assert (status, kind.split(";")[0]) == (200, "text/html"), (status, page[:300])
    api = Api(base)
    api.authenticate(*login)
    assert api.call("GET", "/api/v2/dags?limit=1")["total_entries"] >= 1
    status, kind, page = fetch(f"{base}/")
    assert (status, kind.split(";")[0]) == (200, "text/html"), (status, page[:300])
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets, f"the UI page loads no script or style: {page[:500]}"
    asset = urljoin(f"{base}/", assets[0])
    assert fetch(asset)[0] == 200, f"the UI's asset {asset} does not load through the ingress"


@pytest.fixture(scope="module")
def pushed(deployment: Deployment, api: Api, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The fault DAG and this module's DAG, registered before the release changes shape (the package's `api`
    port-forward does not survive the api-server's replacement)."""
    dags = {FAULT_DAG_ID: FAULT_DAG, PRODUCTION_DAG_ID: PRODUCTION_DAG}
    deployment.push_and_register_all(api, tmp_path_factory.mktemp("production"), dags, timeout=REGISTERED_BOUND_S)
    release(api, "nothing yet")


def test_the_ingress_at_the_root_serves_the_login_a_rest_call_and_the_ui(deployment: Deployment, pushed: None) -> None:
    """ingress.enabled alone, no base_url: the Ingress serves / of every host, and no pod restarts for it."""
    before = {c: component_pods(deployment, c) for c in ("api-server", "scheduler")}
    deployment.upgrade("--set", "ingress.enabled=true")
    assert {c: component_pods(deployment, c) for c in before} == before
    with serve_ingress(deployment) as ingress:
        assert [(r.host, r.path) for r in ingress.routes] == [("", "/")]
        assert_airflow_through(ingress.url, deployment.login())


def crd_established(deployment: Deployment) -> bool:
    crd = deployment.cluster.get("crd", "httproutes.gateway.networking.k8s.io")
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def production(deployment: Deployment, pushed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    port = free_port()
    values = tmp_path_factory.mktemp("values") / "production.yaml"
    values.write_text(yaml.safe_dump(production_values(port)))
    deployment.cluster.kubectl("apply", "--filename", str(GATEWAY_API_CRDS / ROUTE_CRD))
    # Until the apiserver has established the CRD, helm's upgrade finds no HTTPRoute kind and fails.
    # (kubectl wait cannot: it errors while the new CRD has no conditions yet.)
    wait_for("the HTTPRoute CRD established", partial(crd_established, deployment), timeout=120)
    try:
        started = time.monotonic()
        deployment.upgrade("--values", str(values))
        deployment.measured["upgrade_to_production_s"] = time.monotonic() - started
        wait_for(
            "the api-server Service routed to 2 Ready pods of the new revision alone",
            lambda: deployment.api_servers_settled(2),
            timeout=ROLLOUT_BOUND_S,
        )
        with serve_ingress(deployment, port) as ingress:
            api = Api(f"http://localhost:{port}{SUB_PATH}")
            api.authenticate(*deployment.login())
            yield Production(ingress, api, values)
    finally:
        started = time.monotonic()
        deployment.upgrade()
        deployment.measured["upgrade_back_s"] = time.monotonic() - started
        deployment.cluster.kubectl("delete", "--filename", str(GATEWAY_API_CRDS / ROUTE_CRD), "--ignore-not-found")


def test_the_ingress_at_the_base_url_sub_path_serves_the_login_a_rest_call_and_the_ui(
    deployment: Deployment, production: Production
) -> None:
    assert [(r.host, r.path) for r in production.ingress.routes] == [("localhost", SUB_PATH)]
    assert_airflow_through(production.base, deployment.login())


def test_the_apiserver_accepts_the_route_and_the_autoscaler_owns_the_api_server_count(
    deployment: Deployment, production: Production
) -> None:
    route = deployment.cluster.get("httproute", f"{FULLNAME}-api-server")
    assert route["spec"]["hostnames"] == ["localhost"]
    assert route["spec"]["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": SUB_PATH}
    hpa = deployment.cluster.get("hpa", f"{FULLNAME}-api-server")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    assert deployment.cluster.get(f"deployment/{FULLNAME}-api-server")["spec"]["replicas"] == 2
    budgets = {b["metadata"]["name"] for b in deployment.cluster.get("pdb")["items"]}
    assert budgets == {f"{FULLNAME}-{c}" for c in ("api-server", "scheduler", "triggerer")}


def test_a_task_reads_a_config_map_through_worker_extra_volumes_and_a_deferred_task_resumes_after_its_trigger(
    deployment: Deployment, production: Production
) -> None:
    api = production.api
    assert len(component_pods(deployment, "triggerer")) == 2
    run_id = trigger_dag(api, PRODUCTION_DAG_ID, {})
    assert wait_for_run(api, PRODUCTION_DAG_ID, run_id, timeout=RUN_BOUND_S, interval=1) == "success"
    xcom = f"{run_path(PRODUCTION_DAG_ID, run_id)}/taskInstances/{{}}/xcomEntries/return_value"
    assert api.call("GET", xcom.format("read_team_config"))["value"] == TEAM_DATA
    assert "resumed after the trigger fired" in api.call("GET", xcom.format("wait_in_the_triggerer"))["value"]
    log = api.call("GET", f"{run_path(PRODUCTION_DAG_ID, run_id)}/taskInstances/wait_in_the_triggerer/logs/1")
    assert "Pausing task as DEFERRED" in str(log["content"])


def evict(deployment: Deployment, pod: str) -> tuple[bool, str]:
    """Ask the Eviction API, as a drain does, to evict the pod: (allowed, what the apiserver said)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "airflow"}}
    path = f"/api/v1/namespaces/airflow/pods/{pod}/eviction"
    done = deployment.cluster.kubectl("create", "--raw", path, "--filename", "-", check=False, input=json.dumps(body))
    return done.returncode == 0, done.stdout + done.stderr


def test_the_disruption_budget_lets_a_drain_evict_one_scheduler_but_not_the_second(
    deployment: Deployment, production: Production
) -> None:
    first, second = sorted(component_pods(deployment, "scheduler").values())
    allowed, said = evict(deployment, first)
    assert allowed, said
    allowed, said = evict(deployment, second)
    assert not allowed
    assert "disruption budget" in said, said
    deployment.cluster.kubectl("rollout", "status", f"deployment/{FULLNAME}-scheduler", f"--timeout={ROLLOUT_BOUND_S}s")
    wait_for("two Ready schedulers", lambda: ready_count(deployment, "scheduler") == 2, timeout=ROLLOUT_BOUND_S)


def ready_count(deployment: Deployment, component: str) -> int:
    return deployment.cluster.get(f"deployment/{FULLNAME}-{component}")["status"].get("readyReplicas", 0)


def scheduler_pod_of_job(deployment: Deployment, api: Api, job_id: str) -> str:
    """The scheduler pod whose SchedulerJob is ``job_id`` (a job's hostname is its pod's IP: the chart's
    hostname_callable)."""
    jobs = api.call("GET", "/api/v2/jobs?job_type=SchedulerJob&limit=100")["jobs"]
    (host,) = [job["hostname"] for job in jobs if str(job["id"]) == job_id]
    selector = f"app.kubernetes.io/component=scheduler,app.kubernetes.io/instance={RELEASE}"
    (name,) = [
        pod["metadata"]["name"]
        for pod in deployment.cluster.get("pods", "--selector", selector)["items"]
        if pod["status"].get("podIP") == host
    ]
    return name


def test_a_scheduler_deleted_mid_run_leaves_the_survivor_to_finish_it_with_every_task_run_once(
    deployment: Deployment, production: Production
) -> None:
    """The scheduler that launched the running task's pod is deleted and gone before the task is released: the
    survivor queues the next task, and the dead scheduler's worker pod is adopted and deleted (by the survivor or by
    the Deployment's replacement, whichever checks for orphans first); both are timed."""
    api = production.api
    run_id, gate_pod = start_gated_run(deployment, api, "until-released")
    launcher = scheduler_pod_of_job(deployment, api, gate_pod["metadata"]["labels"]["airflow-worker"])
    deleted_at = time.time()
    deployment.cluster.kubectl("delete", "pod", launcher, "--wait=true", timeout=ROLLOUT_BOUND_S)
    released_at = time.time()
    release(api, run_id)

    assert finish(deployment, api, run_id) == EVERY_TASK_ONCE  # and every worker pod of the run deleted
    cleaned_up = time.time() - deleted_at
    queued = _epoch(task_instances(api, FAULT_DAG_ID, run_id)["consume"]["queued_when"]) - released_at
    deployment.measured["scheduler_gone_s"] = released_at - deleted_at
    deployment.measured["survivor_queues_next_task_s"] = queued
    deployment.measured["dead_schedulers_pods_cleaned_up_s"] = cleaned_up
    print(f"scheduler gone in {released_at - deleted_at:.1f} s; gate released -> consume queued by the survivor: "
          f"{queued:.1f} s; deleted -> the worker pods adopted and deleted: {cleaned_up:.1f} s")  # fmt: skip
    assert queued < TAKEOVER_BOUND_S
    assert cleaned_up < ADOPTION_BOUND_S


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Poller:
    """GETs ``url`` every 0.1 s from a thread and keeps what failed."""

    api: Api
    path: str
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.calls += 1
            try:
                self.api.call("GET", self.path)
            except (ApiError, OSError) as err:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {err}"[:300])


def test_an_api_server_rollout_mid_run_fails_no_task_and_no_request_through_the_ingress(
    deployment: Deployment, production: Production
) -> None:
    api = production.api
    run_id, _ = start_gated_run(deployment, api, "until-released")
    poller = Poller(api, f"/api/v2/dags/{FAULT_DAG_ID}/dagRuns/{run_id}")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    before = component_pods(deployment, "api-server")
    try:
        deployment.upgrade(
            "--values", str(production.values), "--set", f"apiServer.podAnnotations.rolled=r{run_id[-6:]}"
        )
        wait_for(
            "the api-server's pods to be replaced",
            lambda: (
                not (component_pods(deployment, "api-server").keys() & before.keys())
                and ready_count(deployment, "api-server") == 2
            ),
            timeout=ROLLOUT_BOUND_S,
        )
        release(api, run_id)
        states = finish(deployment, api, run_id)
    finally:
        poller.stop.set()
        thread.join(timeout=30)
    deployment.measured["rollout_rest_calls"] = poller.calls
    deployment.measured["rollout_rest_failures"] = len(poller.failures)
    print(f"REST calls through the ingress during the rollout: {poller.calls}, failed: {len(poller.failures)}")
    assert states == EVERY_TASK_ONCE
    assert not poller.failures, poller.failures


def test_a_request_through_the_ingress_costs_about_what_one_through_a_port_forward_does(
    deployment: Deployment, production: Production
) -> None:
    """Latency of the same REST call both ways, alternating, recorded for scripts/bench_cluster_suite.py."""
    path = "/api/v2/dags?limit=1"
    times: dict[str, list[float]] = {"ingress": [], "port-forward": []}
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        forwarded = Api(f"http://127.0.0.1:{port}{SUB_PATH}")
        forwarded.token = production.api.token
        for _ in range(LATENCY_CALLS):
            for way, api in (("ingress", production.api), ("port-forward", forwarded)):
                started = time.perf_counter()
                api.call("GET", path)
                times[way].append(time.perf_counter() - started)
    for way, values in times.items():
        values.sort()
        deployment.measured[f"latency_{way}_p50_ms"] = 1000 * values[len(values) // 2]
        deployment.measured[f"latency_{way}_p95_ms"] = 1000 * values[int(len(values) * 0.95)]
    print({k: round(v, 1) for k, v in deployment.measured.items() if k.startswith("latency")})
