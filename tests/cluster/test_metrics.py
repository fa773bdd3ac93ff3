"""metrics.enabled on the local cluster, scraped by a real Prometheus (scripts/bootstrap builds it from the Go module
proxy) run on this machine: it scrapes the statsd_exporter's Service at its ClusterIP (kube-proxy routes the node's
traffic there), as a Prometheus in the cluster would through the Service's scrape annotations or the ServiceMonitor.

One upgrade turns metrics on (every Airflow pod rolls: airflow.cfg changed), one run of example_dataframe_pipeline
follows, and PromQL through Prometheus's HTTP API must show what the worker pods and the scheduler sent: Airflow's
own metrics and the XCom backend's, whose bytes must equal the blob's size in Azurite. Then the run is made 100 days
old and a Job from the db-cleanup CronJob deletes its rows and its blob: its metrics must count exactly what left
Azurite. A run of tests/cluster/dags/cluster_fault_dag.py whose pushed blob is altered before the pull (as
test_faults.py does) must be counted as integrity failures and fire the chart's AirflowXComIntegrityFailures alert:
Prometheus evaluates the chart's alert rules (metrics.prometheusRule, as `helm template` renders them) on the scrape,
labelled as a ServiceMonitor scrape would be. Every query of the rules and of the Grafana dashboard must name
metrics this scrape showed, and every dashboard query must return data. The module ends with the profiles alone
again.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from scripts.airflow_api import Api, TimedOut, trigger_dag, wait_for, wait_for_run
from scripts.devstack.services import azurite_connection_string, free_port, wait_for_port
from scripts.localcluster.images import standins
from scripts.paths import PROMETHEUS, ROOT
from tests.cluster.cleanup import backdate, blobs_by_run, delete_jobs, run_job, xcom_container
from tests.cluster.conftest import Deployment
from tests.cluster.gated import DAG_ID as FAULT_DAG_ID
from tests.cluster.gated import (
    FAULT_DAG,
    REGISTERED_BOUND_S,
    ROLLOUT_BOUND_S,
    RUN_BOUND_S,
    pushed_blob,
    release,
    settle,
    start_gated_run,
)
from tests.support.cluster import NAMESPACE, cluster_script
from tests.support.helm import FULLNAME, render

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
TASKS = 3  # extract, transform, load
SCRAPE_INTERVAL_S = 2
SEEN_BOUND_S = 60  # a scrape or two after the run's end, and the scheduler's own heartbeat interval
CLEANUP_JOB = "db-cleanup-test-metrics"
EXPORTER = f"{FULLNAME}-statsd-exporter"
RULES = render({"metrics.enabled": True, "metrics.prometheusRule": "always"}).of_kind("PrometheusRule")[0]
DASHBOARD = json.loads((ROOT / "chart" / "files" / "grafana-dashboard.json").read_text())
# The dashboard's variables as Grafana fills them for this release.
DASHBOARD_VARIABLES = {"$namespace": NAMESPACE, "$job": EXPORTER, "$__rate_interval": "1m"}


@dataclass
class Prometheus:
    port: int
    target: str

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single sample of an instant query (None while there is none)."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def alerts(self) -> dict[str, str]:
        """alertname -> state (pending or firing) of the alerts active now."""
        return {alert["labels"]["alertname"]: alert["state"] for alert in self.get("/api/v1/alerts")["alerts"]}

    def settles(self, read: Callable[[], Any], expected: Any, what: str) -> bool:
        """Waits (a scrape or two) for ``read()`` to return ``expected``; False if it never does."""
        try:
            return wait_for(what, lambda: read() == expected, timeout=SEEN_BOUND_S)
        except TimedOut:
            return False

    def reaches(self, promql: str, expected: float) -> bool:
        return self.settles(partial(self.value, promql), expected, f"{promql} == {expected}")

    def by_labels(self, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(sample["metric"][label] for label in labels): float(sample["value"][1])
            for sample in self.query(promql)
        }


def queries() -> dict[str, str]:
    """Every PromQL query the chart ships: its alert rules' and its dashboard's (variables filled in), by where."""
    found = {rule["alert"]: rule["expr"] for group in RULES["spec"]["groups"] for rule in group["rules"]}
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            found[f"{panel['title']} / {target['refId']}"] = expr
    return found


@dataclass
class Cleaned:
    blobs_before: dict[str, int]  # every blob of the XCom container: name -> size
    blobs_after: dict[str, int]
    run_blobs: dict[str, int]  # the run's own, before
    log: str


def container_blobs(service: BlobServiceClient, container: str) -> dict[str, int]:
    return {blob.name: blob.size for blob in service.get_container_client(container).list_blobs()}


def prometheus_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=10) as answer:
            return answer.status == 200
    except OSError:  # URLError and HTTPError (503 while starting) are OSErrors
        return False


@pytest.fixture(scope="module")
def prometheus(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    assert PROMETHEUS.exists(), f"{PROMETHEUS} is missing: run `make install` (scripts/bootstrap cluster)"
    folder = tmp_path_factory.mktemp("prometheus")
    # scripts/deploy imported the images of the release it installed, and the profiles run no exporter.
    cluster_script("load-images", standins()["statsd-exporter"].image)
    try:
        deployment.upgrade("--set", "metrics.enabled=true")
        wait_for("the api-server rolled, alone", lambda: deployment.api_servers_settled(1), timeout=ROLLOUT_BOUND_S)
        service = deployment.cluster.get("service", f"{FULLNAME}-statsd-exporter")
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "metrics")
        target = f"{service['spec']['clusterIP']}:{port}"
        # As a ServiceMonitor scrape labels the series (job: the Service, namespace), which the rules select on.
        scrape = {"job_name": EXPORTER, "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}]}
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [scrape],
        }
        (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": RULES["spec"]["groups"]}))
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        listen = free_port()
        argv = [
            str(PROMETHEUS),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{listen}",
        ]
        with (folder / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(listen, timeout=60, process=process)
            # The port opens before the TSDB is loaded: until then every query answers 503.
            wait_for("Prometheus ready", partial(prometheus_ready, listen), timeout=120)
            yield Prometheus(listen, target)
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        deployment.upgrade()
        wait_for("the api-server back, alone", lambda: deployment.api_servers_settled(1), timeout=ROLLOUT_BOUND_S)


@pytest.fixture(scope="module")
def api(deployment: Deployment, prometheus: Prometheus) -> Iterator[Api]:
    """An api-server port-forward opened after the upgrade rolled the api-server (the package's points at a pod that
    is gone)."""
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        yield deployment.api(port)


@pytest.fixture(scope="module")
def run_id(api: Api) -> str:
    run = trigger_dag(api, DAG_ID)
    assert wait_for_run(api, DAG_ID, run, timeout=RUN_BOUND_S) == "success"
    return run


@pytest.fixture(scope="module")
def tampered(
    deployment: Deployment, api: Api, service: BlobServiceClient, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A run of the fault DAG whose pushed DataFrame had one byte flipped before consume pulled it: consume fails
    both tries on the checksum, the run fails."""
    workdir = tmp_path_factory.mktemp("fault-dag")
    deployment.push_and_register(api, workdir, FAULT_DAG, FAULT_DAG_ID, timeout=REGISTERED_BOUND_S)
    release(api, "nothing yet")
    run, _ = start_gated_run(deployment, api, "until-released")
    blob = service.get_blob_client(*pushed_blob(api, run))
    data = bytearray(blob.download_blob().readall())
    data[len(data) // 2] ^= 0xFF
    blob.upload_blob(bytes(data), overwrite=True, metadata=blob.get_blob_properties().metadata)
    release(api, run)
    assert settle(deployment, api, run) == "failed"
    return run


@pytest.fixture(scope="module")
def service(azurite_port: int) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", azurite_port))


@pytest.fixture(scope="module")
def cleaned(deployment: Deployment, run_id: str, service: BlobServiceClient) -> Iterator[Cleaned]:
    container = xcom_container(deployment)
    run_blobs = blobs_by_run(service, container, DAG_ID)[run_id]
    backdate(deployment, DAG_ID, run_id, days=100)
    before = container_blobs(service, container)
    try:
        log = run_job(deployment, CLEANUP_JOB, grace_hours="0")
        yield Cleaned(before, container_blobs(service, container), run_blobs, log)
    finally:
        delete_jobs(deployment, CLEANUP_JOB)


def test_prometheus_scrapes_the_exporter(prometheus: Prometheus) -> None:
    up = wait_for("the exporter's target up", lambda: prometheus.value(f'up{{job="{EXPORTER}"}}'), timeout=SEEN_BOUND_S)
    assert up == 1


def test_the_runs_task_successes_reach_prometheus_labelled_from_the_worker_pods(
    prometheus: Prometheus, run_id: str
) -> None:
    """ti.finish and ti_successes come from the task runner in each worker pod: UDP to the exporter's Service."""
    finished = f'sum(airflow_ti_finish{{dag_id="{DAG_ID}",state="success"}})'
    assert wait_for("3 task successes", lambda: prometheus.value(finished) == TASKS, timeout=SEEN_BOUND_S)
    by_task = prometheus.query(f'airflow_ti_successes{{dag_id="{DAG_ID}"}}')
    assert sorted(sample["metric"]["task_id"] for sample in by_task) == ["extract", "load", "transform"]
    assert all(float(sample["value"][1]) == 1 for sample in by_task)


def test_the_scheduler_heartbeat_keeps_counting(prometheus: Prometheus) -> None:
    beats = "airflow_scheduler_heartbeat"
    first = wait_for("a scheduler heartbeat", lambda: prometheus.value(beats), timeout=SEEN_BOUND_S)
    wait_for(
        "the heartbeat counter to grow",
        lambda: (prometheus.value(beats) or 0) > first,
        timeout=SEEN_BOUND_S,
    )


def test_the_xcom_bytes_pushed_and_pulled_equal_the_blob_in_azurite(
    prometheus: Prometheus, run_id: str, deployment: Deployment, service: BlobServiceClient
) -> None:
    """extract's DataFrame is the run's one blob (transform's aggregate and load's totals stay inline); transform reads
    it once, load reads transform's aggregate. The bytes are labelled with the task that wrote them."""
    (size,) = blobs_by_run(service, xcom_container(deployment), DAG_ID)[run_id].values()
    pushed = f'sum(airflow_azblob_xcom_bytes{{dag_id="{DAG_ID}",task_id="extract",direction="push"}})'
    assert prometheus.reaches(pushed, size), prometheus.query(pushed)
    pulled = f'sum(airflow_azblob_xcom_bytes{{dag_id="{DAG_ID}",task_id="extract",direction="pull"}})'
    assert prometheus.reaches(pulled, size), prometheus.query(pulled)
    # load returns a dict, so TaskFlow pushes each of its 3 keys too: 5 inline pushes with transform's aggregate.
    values = {("push", "blob"): 1, ("push", "inline"): 5, ("pull", "blob"): 1, ("pull", "inline"): 1}
    counted = partial(prometheus.by_labels, "airflow_azblob_xcom_values", "direction", "storage")
    assert prometheus.settles(counted, values, "the XCom values by direction and storage"), counted()
    timings = f'airflow_azblob_xcom_duration_count{{dag_id="{DAG_ID}",task_id="extract"}}'
    assert prometheus.by_labels(timings, "direction") == {("pull",): 1, ("push",): 1}


def test_the_cleanup_jobs_deletions_reach_prometheus_as_azurite_saw_them(
    prometheus: Prometheus, cleaned: Cleaned
) -> None:
    """The run's blob is among what the Job deleted (any other orphan older than no grace goes too): the counters
    must equal what left the container."""
    gone = {name: size for name, size in cleaned.blobs_before.items() if name not in cleaned.blobs_after}
    assert cleaned.run_blobs.items() <= gone.items(), cleaned.log[-4000:]
    assert prometheus.reaches("sum(airflow_db_cleanup_blobs_deleted)", len(gone)), cleaned.log[-4000:]
    assert prometheus.reaches("sum(airflow_db_cleanup_bytes_freed)", sum(gone.values()))
    assert prometheus.reaches('sum(airflow_db_cleanup_runs{outcome="success"})', 1)
    assert (prometheus.value('sum(airflow_db_cleanup_rows{table="dag_run"})') or 0) >= 1
    last = prometheus.value("airflow_db_cleanup_last_success")
    assert last is not None
    assert abs(last - time.time()) < 600


def test_an_altered_blob_is_counted_as_integrity_failures_and_fires_the_alert(
    prometheus: Prometheus, tampered: str
) -> None:
    errors = 'sum(airflow_azblob_xcom_errors{direction="pull",error="integrity"})'
    assert prometheus.reaches(errors, 2), prometheus.query("airflow_azblob_xcom_errors")  # consume's two tries
    firing = lambda: prometheus.alerts().get("AirflowXComIntegrityFailures") == "firing"  # noqa: E731
    assert prometheus.settles(firing, True, "AirflowXComIntegrityFailures firing"), prometheus.alerts()


def test_prometheus_evaluates_every_rule_of_the_chart_without_error_and_the_healthy_ones_stay_quiet(
    prometheus: Prometheus, run_id: str
) -> None:
    evaluated = lambda: all(  # noqa: E731
        rule.get("lastEvaluation", "").startswith("20")
        for group in prometheus.get("/api/v1/rules")["groups"]
        for rule in group["rules"]
    )
    assert prometheus.settles(evaluated, True, "every rule evaluated"), prometheus.get("/api/v1/rules")
    rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
    shipped = [rule["alert"] for group in RULES["spec"]["groups"] for rule in group["rules"]]
    assert sorted(rule["name"] for rule in rules) == sorted(shipped)
    assert {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in rules} == {
        rule["name"]: ("ok", "") for rule in rules
    }
    assert "AirflowSchedulerHeartbeatMissing" not in prometheus.alerts()
    assert "AirflowTasksQueuedNotStarting" not in prometheus.alerts()


def test_every_query_the_chart_ships_names_only_metrics_the_scrape_showed_and_the_dashboards_return_data(
    prometheus: Prometheus, run_id: str, tampered: str, cleaned: Cleaned
) -> None:
    """After the run, the fault run and the cleanup every metric the chart queries has been sent at least once."""
    seen = set(prometheus.get("/api/v1/label/__name__/values"))
    unseen = {
        where: sorted(set(re.findall(r"\b(airflow_\w+)\b", expr)) - seen)
        for where, expr in queries().items()
        if set(re.findall(r"\b(airflow_\w+)\b", expr)) - seen
    }
    assert not unseen, sorted(name for name in seen if name.startswith("airflow_"))
    dashboard = {where: expr for where, expr in queries().items() if " / " in where}
    empty = {where: expr for where, expr in dashboard.items() if not prometheus.query(expr)}
    assert not empty
