"""The db-cleanup CronJob driven on the local cluster: a run's rows made old, a Job made from the CronJob, the XCom
blobs in Azurite by run. Shared by test_operations.py and test_metrics.py.
"""

from __future__ import annotations

import configparser
import json

from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import metadata_ids
from scripts.airflow_api import wait_for
from tests.cluster.conftest import Deployment
from tests.support.airflow import DB_CLEAN_AGE_COLUMNS
from tests.support.helm import FULLNAME

CRONJOB = f"{FULLNAME}-db-cleanup"
JOB_BOUND_S = 300


def xcom_container(deployment: Deployment) -> str:
    """[azblob_xcom] container of the release's airflow.cfg."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(deployment.cluster.get("configmap", f"{FULLNAME}-config")["data"]["airflow.cfg"])
    return cfg["azblob_xcom"]["container"]


def psql(deployment: Deployment, sql: str) -> str:
    done = deployment.cluster.kubectl(
        "exec", f"{FULLNAME}-postgresql-0", "--", "psql", "-v", "ON_ERROR_STOP=1", "-U", "airflow", "-d", "airflow",
        "-At", "-c", sql,
    )  # fmt: skip
    return done.stdout


def backdate(deployment: Deployment, dag_id: str, run_id: str, days: int) -> None:
    """Move a run's rows ``days`` back in time: the only way a test gets rows older than a retention."""
    for table, column in DB_CLEAN_AGE_COLUMNS.items():
        changed = psql(
            deployment,
            f"UPDATE {table} SET {column} = {column} - interval '{days} days' "
            f"WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'",
        )
        assert changed.strip() != "UPDATE 0", f"no {table} row of {run_id} to backdate"


def blobs_by_run(service: BlobServiceClient, container: str, dag_id: str) -> dict[str, dict[str, int]]:
    """run id -> {blob name: size} of ``dag_id``'s XCom blobs."""
    found: dict[str, dict[str, int]] = {}
    for blob in service.get_container_client(container).list_blobs(include=["metadata"]):
        try:
            ids = metadata_ids(blob.metadata or {})
        except KeyError:  # not an XCom blob (e.g. the helm test's round trip)
            continue
        if ids["dag_id"] == dag_id:
            found.setdefault(ids["run_id"], {})[blob.name] = blob.size
    return found


def run_job(deployment: Deployment, name: str, *, grace_hours: str | None = None) -> str:
    """A Job from the CronJob's template (`kubectl create job --from=cronjob/...`: its pod exactly as scheduled; its
    args changed only for ``grace_hours``); waits for it to succeed and returns its pod's log. The caller deletes it:
    helm uninstall would leave it."""
    if grace_hours is None:
        deployment.cluster.kubectl("create", "job", name, f"--from=cronjob/{CRONJOB}")
    else:
        cronjob = deployment.cluster.get("cronjob", CRONJOB)
        spec = cronjob["spec"]["jobTemplate"]["spec"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        args[args.index("--xcom-blob-grace-hours") + 1] = grace_hours
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}
        deployment.cluster.kubectl("create", "-f", "-", input=json.dumps(job))

    def finished() -> str | None:
        status = deployment.cluster.get("job", name).get("status", {})
        if status.get("failed"):
            return "failed"
        return "succeeded" if status.get("succeeded") else None

    state = wait_for(f"job {name} to finish", finished, timeout=JOB_BOUND_S)
    log = deployment.cluster.kubectl("logs", f"job/{name}", "--container", "db-cleanup").stdout
    assert state == "succeeded", f"job {name} failed:\n{log[-4000:]}"
    return log


def delete_jobs(deployment: Deployment, *names: str) -> None:
    delete = ("delete", "job", *names, "--ignore-not-found", "--cascade=foreground", "--wait")
    deployment.cluster.kubectl(*delete, timeout=JOB_BOUND_S)
