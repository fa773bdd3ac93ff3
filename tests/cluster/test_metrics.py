"""metrics.enabled on the local cluster, scraped by a real Prometheus (scripts/bootstrap builds it from the Go module
proxy) run on this machine: it scrapes the statsd_exporter's Service at its ClusterIP (kube-proxy routes the node's
traffic there), as a Prometheus in the cluster would through the Service's scrape annotations or the ServiceMonitor.

One upgrade turns metrics on (every Airflow pod rolls: airflow.cfg changed), one run of example_dataframe_pipeline
follows, and PromQL through Prometheus's HTTP API must show what the worker pods and the scheduler sent. The module
ends with the profiles alone again.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from scripts.airflow_api import trigger_dag, wait_for, wait_for_run
from scripts.devstack.services import free_port, wait_for_port
from scripts.localcluster.images import standins
from scripts.paths import PROMETHEUS
from tests.cluster.conftest import Deployment
from tests.cluster.gated import ROLLOUT_BOUND_S, RUN_BOUND_S
from tests.support.cluster import cluster_script
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
TASKS = 3  # extract, transform, load
SCRAPE_INTERVAL_S = 2
SEEN_BOUND_S = 60  # a scrape or two after the run's end, and the scheduler's own heartbeat interval


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
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": [{"job_name": "airflow", "static_configs": [{"targets": [target]}]}],
        }
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
            yield Prometheus(listen, target)
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        deployment.upgrade()
        wait_for("the api-server back, alone", lambda: deployment.api_servers_settled(1), timeout=ROLLOUT_BOUND_S)


@pytest.fixture(scope="module")
def run_id(deployment: Deployment, prometheus: Prometheus) -> str:
    with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080) as port:
        api = deployment.api(port)
        run = trigger_dag(api, DAG_ID)
        assert wait_for_run(api, DAG_ID, run, timeout=RUN_BOUND_S) == "success"
    return run


def test_prometheus_scrapes_the_exporter(prometheus: Prometheus) -> None:
    up = wait_for("the exporter's target up", lambda: prometheus.value('up{job="airflow"}'), timeout=SEEN_BOUND_S)
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
