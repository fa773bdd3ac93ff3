"""Day-2 operations on the local cluster: the chart's db-cleanup CronJob deletes old metadata rows and then the XCom
blobs it orphaned, and keeps recent runs and their blobs.

Two runs of example_dataframe_pipeline leave offloaded XComs; the first is made 100 days old the only way a test
can (its dag_run, task_instance and xcom timestamps moved back in PostgreSQL). A Job made from the CronJob
(`kubectl create job --from=cronjob/...`: its pod exactly as scheduled) deletes the old run's rows and, with the
default 24-hour grace, keeps its minutes-old blobs; a second Job from the same template with the grace set to 0
then deletes them. The recent run, its rows and blobs stay throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.storage.blob import BlobServiceClient

from scripts.airflow_api import Api, run_dag, run_path
from scripts.devstack.services import azurite_connection_string
from tests.cluster.cleanup import backdate, blobs_by_run, delete_jobs, run_job, xcom_container
from tests.cluster.conftest import Deployment

pytestmark = pytest.mark.slow
DAG_ID = "example_dataframe_pipeline"
RUN_BOUND_S = 600
JOBS = ("db-cleanup-test-default", "db-cleanup-test-no-grace")


@dataclass
class Cleaned:
    old: str  # run ids
    recent: str
    blobs_before: dict[str, dict[str, int]]  # run id -> its XCom blobs and their sizes
    rows_after_default: dict[str, bool]  # run id -> its dag_run still exists
    blobs_after_default: dict[str, dict[str, int]]
    rows_after_no_grace: dict[str, bool]
    blobs_after_no_grace: dict[str, dict[str, int]]
    logs: dict[str, str]  # job -> its pod's log


def run_exists(api: Api, run_id: str) -> bool:
    return api.exists(run_path(DAG_ID, run_id))


@pytest.fixture(scope="module")
def cleaned(deployment: Deployment, api: Api, azurite_port: int) -> Iterator[Cleaned]:
    service = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", azurite_port))
    container = xcom_container(deployment)
    old = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
    recent = run_dag(api, DAG_ID, timeout=RUN_BOUND_S, interval=1)
    blobs_before = blobs_by_run(service, container, DAG_ID)
    backdate(deployment, DAG_ID, old, days=100)

    try:
        logs = {"default": run_job(deployment, JOBS[0])}
        rows_after_default = {run: run_exists(api, run) for run in (old, recent)}
        blobs_after_default = blobs_by_run(service, container, DAG_ID)
        logs["no-grace"] = run_job(deployment, JOBS[1], grace_hours="0")
        yield Cleaned(
            old, recent, blobs_before, rows_after_default, blobs_after_default,
            {run: run_exists(api, run) for run in (old, recent)}, blobs_by_run(service, container, DAG_ID), logs,
        )  # fmt: skip
    finally:
        delete_jobs(deployment, *JOBS)


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
