"""Example: one step in a pod of its own. KubernetesPodOperator runs `crunch` as a container with its own image and
resources, in the step namespace the chart names (`workers.podOperator.namespace`, apart from the release's); the
container writes its small result to /airflow/xcom/return.json, which comes back as the task's XCom, and `report`
reads it like any other task's result. The pod is deleted when the step ends.

Needs the chart's `workers.podOperator` (on in the kind profile, namespace airflow-steps): it gives the tasks'
ServiceAccount the right to manage pods in that namespace and sets the `kubernetes_default` connection there. The
image is the Airflow image the chart deploys, standing in for your step's own: fixed in the DAG, never taken from a
run's parameters (whoever may trigger a run would otherwise choose what runs). On the local stack (`make up`, no
Kubernetes) this DAG fails at its first task, saying there is no cluster config.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Param, dag, task
from airflow.sdk.configuration import conf
from kubernetes.client import models as k8s

# The image the chart runs tasks in ([kubernetes_executor] worker_container_*: the chart sets both; Airflow's own
# defaults are empty, hence `or` rather than a fallback).
AIRFLOW_IMAGE = ":".join(
    conf.get("kubernetes_executor", key, fallback="") or default
    for key, default in (("worker_container_repository", "airflow-azblob"), ("worker_container_tag", "local"))
)

# What the step runs: any program that writes JSON to /airflow/xcom/return.json passes it back.
STEP = """
import json, os, socket, statistics
n = int(os.environ["N"])
squares = [i * i for i in range(1, n + 1)]
result = {"n": n, "sum": sum(squares), "mean": statistics.fmean(squares), "pod": socket.gethostname()}
with open("/airflow/xcom/return.json", "w") as out:
    json.dump(result, out)
print("crunched", result)
"""


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["example", "kubernetes"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={"n": Param(1000, type="integer", minimum=1)},
    doc_md=__doc__,
)
def example_pod_operator():
    crunch = KubernetesPodOperator(
        task_id="crunch",
        name="crunch",
        image=AIRFLOW_IMAGE,
        cmds=["python", "-c", STEP],
        env_vars={"N": "{{ params.n }}"},
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "256Mi"}
        ),
        # Restricted, as the chart's own pods: uid 50000 is the Airflow image's user (set your image's).
        security_context={"runAsNonRoot": True, "runAsUser": 50000, "seccompProfile": {"type": "RuntimeDefault"}},
        container_security_context={
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        labels={"app.kubernetes.io/part-of": "example_pod_operator"},
        do_xcom_push=True,
        on_finish_action="delete_pod",
        startup_timeout_seconds=300,
    )

    @task
    def report(result: dict) -> dict:
        n = result["n"]
        expected = n * (n + 1) * (2 * n + 1) // 6
        if result["sum"] != expected:
            raise ValueError(f"crunch returned sum {result['sum']} for n={n}; the sum of squares is {expected}")
        print(f"crunch ran in pod {result['pod']}: the squares of 1..{n} sum to {result['sum']}")
        return {"n": n, "sum": result["sum"]}

    report(crunch.output)


example_pod_operator()
