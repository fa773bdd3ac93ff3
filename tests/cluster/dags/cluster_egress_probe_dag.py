"""Pushed to the local cluster by tests/cluster/test_enforced_network_policies.py: from inside a KubernetesExecutor
task pod, under the chart's egress policy for task pods, try a TCP connection to each address of the run's conf
({"targets": {name: [host, port]}}) and return what happened to each. The task succeeds whatever the answers: the test
compares them with what the policy allows. Run as a script, it probes from wherever it runs (the test's control)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pendulum
from airflow.sdk import dag, get_current_context, task

# A connection the policy drops never answers: its SYN is dropped, so the attempt runs into this timeout. An allowed
# one answers in milliseconds, even on a busy node.
CONNECT_TIMEOUT_S = 5.0


def connect(host: str, port: int) -> str:
    """'connected', 'timed out' (dropped on the way) or the error (e.g. refused: reached, nobody listening)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return "connected"
    except TimeoutError:
        return "timed out"
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def connect_all(targets: dict[str, list]) -> dict[str, str]:
    """Every target at once: the dropped ones cost one timeout together, not one each."""
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        answers = {name: pool.submit(connect, host, int(port)) for name, (host, port) in targets.items()}
    return {name: answer.result() for name, answer in answers.items()}


@dag(
    dag_id="cluster_egress_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def cluster_egress_probe() -> None:
    @task
    def probe() -> dict[str, str]:
        return connect_all(get_current_context()["dag_run"].conf["targets"])

    probe()


cluster_egress_probe()

if __name__ == "__main__":  # the same probe from a pod no egress policy selects: python - '<targets as JSON>'
    import json
    import sys

    print(json.dumps(connect_all(json.loads(sys.argv[1]))))
