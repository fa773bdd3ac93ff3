"""Day-2 operations on the local cluster: the chart's db-cleanup CronJob deletes old metadata rows and then the XCom
blobs it orphaned, and keeps recent runs and their blobs.

Two runs of example_dataframe_pipeline leave offloaded XComs; the first is made 100 days old the only way a test
can (its dag_run, task_instance and xcom timestamps moved back in PostgreSQL). A Job made from the CronJob
(`kubectl create job --from=cronjob/...`: its pod exactly as scheduled) deletes the old run's rows and, with the
default 24-hour grace, keeps its minutes-old blobs; a second Job from the same template with the grace set to 0
then deletes them. The recent run, its rows and blobs stay throughout.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import metadata_ids
from scripts.airflow_api import Api, run_dag, run_path, wait_for
from scripts.devstack.services import azurite_connection_string
from tests.cluster.conftest import Deployment
from tests.support.airflow import DB_CLEAN_AGE_COLUMNS
from tests.support.helm import FULLNAME

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
RUN_BOUND_S = 600
JOB_BOUND_S = 300
CRONJOB = f"{FULLNAME}-db-cleanup"
JOBS = ("db-cleanup-test-default", "db-cleanup-test-no-grace")


@dataclass
class Cleaned:
    old: str  # run ids
    recent: str
    blobs_before: dict[str, set[str]]  # run id -> its XCom blobs
    rows_after_default: dict[str, bool]  # run id -> its dag_run still exists
    blobs_after_default: dict[str, set[str]]
    rows_after_no_grace: dict[str, bool]
    blobs_after_no_grace: dict[str, set[str]]
    logs: dict[str, str]  # job -> its pod's log


def psql(deployment: Deployment, sql: str) -> str:
    done = deployment.cluster.kubectl(
        "exec", f"{FULLNAME}-postgresql-0", "--", "psql", "-v", "ON_ERROR_STOP=1", "-U", "airflow", "-d", "airflow",
        "-At", "-c", sql,
    )  # fmt: skip
    return done.stdout


def backdate(deployment: Deployment, run_id: str, days: int) -> None:
    for table, column in DB_CLEAN_AGE_COLUMNS.items():
        changed = psql(
            deployment,
            f"UPDATE {table} SET {column} = {column} - interval '{days} days' "
            f"WHERE dag_id = '{DAG_ID}' AND run_id = '{run_id}'",
        )
        assert changed.strip() != "UPDATE 0", f"no {table} row of {run_id} to backdate"


def blobs_by_run(service: BlobServiceClient, container: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for blob in service.get_container_client(container).list_blobs(include=["metadata"]):
        try:
            ids = metadata_ids(blob.metadata or {})
        except KeyError:  # not an XCom blob (e.g. the helm test's round trip)
            continue
        if ids["dag_id"] == DAG_ID:
            found.setdefault(ids["run_id"], set()).add(blob.name)
    return found


def run_exists(api: Api, run_id: str) -> bool:
    return api.exists(run_path(DAG_ID, run_id))


def run_job(deployment: Deployment, name: str, *, grace_hours: str | None = None) -> str:
    """A Job from the CronJob's template (its args changed only for ``grace_hours``); waits for it to succeed and
    returns its pod's log."""
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


@pytest.fixture(scope="module")
def cleaned(deployment: Deployment, api: Api, azurite_port: int) -> Iterator[Cleaned]:
    service = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", azurite_port))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(deployment.cluster.get("configmap", f"{FULLNAME}-config")["data"]["airflow.cfg"])
    container = cfg["azblob_xcom"]["container"]
    old = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
    recent = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
    blobs_before = blobs_by_run(service, container)
    backdate(deployment, old, days=100)

    try:
        logs = {"default": run_job(deployment, JOBS[0])}
        rows_after_default = {run: run_exists(api, run) for run in (old, recent)}
        blobs_after_default = blobs_by_run(service, container)
        logs["no-grace"] = run_job(deployment, JOBS[1], grace_hours="0")
        yield Cleaned(
            old, recent, blobs_before, rows_after_default, blobs_after_default,
            {run: run_exists(api, run) for run in (old, recent)}, blobs_by_run(service, container), logs,
        )  # fmt: skip
    finally:  # the Jobs are this test's, not the release's: helm uninstall would leave them
        delete = ("delete", "job", *JOBS, "--ignore-not-found", "--cascade=foreground", "--wait")
        deployment.cluster.kubectl(*delete, timeout=JOB_BOUND_S)


def test_each_run_left_blobs_to_clean(cleaned: Cleaned) -> None:
    assert cleaned.blobs_before.get(cleaned.old)
    assert cleaned.blobs_before.get(cleaned.recent)


def test_the_cronjobs_job_deletes_the_old_runs_rows_and_keeps_the_recent_run(cleaned: Cleaned) -> None:
    assert cleaned.rows_after_default == {cleaned.old: False, cleaned.recent: True}, cleaned.logs["default"][-4000:]
    assert "airflow db clean --clean-before-timestamp" in cleaned.logs["default"]


def test_the_default_grace_keeps_minutes_old_orphans_and_a_later_run_deletes_them(cleaned: Cleaned) -> None:
    old_blobs = cleaned.blobs_before[cleaned.old]
    assert cleaned.blobs_after_default.get(cleaned.old) == old_blobs
    assert "younger than the cutoff" in cleaned.logs["default"]
    assert cleaned.old not in cleaned.blobs_after_no_grace, cleaned.logs["no-grace"][-4000:]
    assert f"deleted {len(old_blobs)} " in cleaned.logs["no-grace"]


def test_the_recent_runs_rows_and_blobs_stay(cleaned: Cleaned, api: Api) -> None:
    assert cleaned.rows_after_no_grace == {cleaned.old: False, cleaned.recent: True}
    assert cleaned.blobs_after_no_grace[cleaned.recent] == cleaned.blobs_before[cleaned.recent]
    extract = api.call("GET", f"{run_path(DAG_ID, cleaned.recent)}/taskInstances/extract/xcomEntries/return_value")
    assert extract["value"]["azblob_xcom_ref"] == 1
