"""include/db_cleanup.py (the chart's db-cleanup CronJob) run for real: `airflow db clean` on the metadata DB, then
the sweep of the XCom blobs whose rows it deleted, against Azurite.

Setup (once per module): cleanup_fixture (tests/dags/dags/retention_fixture.py) runs twice with `airflow dags
test` (five offloaded XComs per run). The first run is made 100 days old the only way a test can: its dag_run,
task_instance and xcom timestamps are moved back in the DB. Then the cleanup runs three times with a 30-day
retention: a dry run, a run whose 24-hour blob grace keeps the (just uploaded) blobs, and a run with no grace. Each
process sends its metrics (include/metrics.py) to a StatsD receiver of its own in this process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from include.azblob_xcom_backend import parse_uri
from scripts.devstack.services import AZURITE_KEY, free_port
from scripts.paths import ROOT
from tests.support.airflow import DB_CLEAN_AGE_COLUMNS, dags_test, wasb_connection
from tests.support.statsd_receiver import StatsdReceiver

pytestmark = pytest.mark.slow

FIXTURE_DAG = "cleanup_fixture"  # tests/dags/dags/retention_fixture.py; its rows are this module's alone


@dataclass
class Cleanup:
    returncode: int
    output: str
    blobs: set[str]  # the container's blobs after the run
    runs: set[str]  # the fixture DAG's runs left in the DB
    metrics: StatsdReceiver  # what it sent
    dag_runs_deleted: int  # dag_run rows (of every DAG) gone during the run


@dataclass
class Scenario:
    xcom: ContainerClient
    old: tuple[str, set[str]]  # run id, its blobs
    recent: tuple[str, set[str]]
    cleanups: dict[str, Cleanup]
    sizes: dict[str, int]  # blob name -> bytes, before the cleanups
    runs_metrics: list[StatsdReceiver]  # what the two `airflow dags test` runs sent


def cleanup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "include.db_cleanup", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def measured(env: dict[str, str], step: Any) -> tuple[Any, StatsdReceiver]:
    """``step(env)`` with [metrics] sending to a new receiver; its result and the receiver, closed after it."""
    receiver = StatsdReceiver()
    try:
        return step({**env, **receiver.env()}), receiver
    finally:
        receiver.close()


def dag_run_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM dag_run").fetchone()[0]


def runs_of(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {run for (run,) in conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (FIXTURE_DAG,))}


def blobs_of(db: Path, run_id: str) -> set[str]:
    """The blob names the XCom rows of ``run_id`` reference."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT value FROM xcom WHERE dag_id = ? AND run_id = ?", (FIXTURE_DAG, run_id))
        values = [json.loads(v) if isinstance(v, str) else v for (v,) in rows]
    return {parse_uri(value["uri"])[1] for value in values}


def backdate(db: Path, run_id: str, days: int) -> None:
    """Move a run's rows ``days`` back in time (SQLite keeps Airflow's UTC timestamps as text)."""
    when = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db) as conn:
        for table, column in DB_CLEAN_AGE_COLUMNS.items():
            changed = conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE dag_id = ? AND run_id = ?",
                (when, FIXTURE_DAG, run_id),
            ).rowcount
            assert changed, f"no {table} row of {run_id} to backdate"


@pytest.fixture(scope="module")
def scenario(airflow_db, azurite) -> Scenario:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    xcom = service.create_container(f"cleanup-{uuid.uuid4().hex[:10]}")
    env = {
        **os.environ,
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": xcom.container_name,
        "AIRFLOW__AZBLOB_XCOM__THRESHOLD": "1024",
    }
    dags = ROOT / "tests" / "dags" / "dags"
    before = runs_of(airflow_db)
    _, first = measured(env, lambda env: dags_test(FIXTURE_DAG, dags, env))
    (old,) = runs_of(airflow_db) - before
    _, second = measured(env, lambda env: dags_test(FIXTURE_DAG, dags, env))
    (recent,) = runs_of(airflow_db) - before - {old}
    backdate(airflow_db, old, days=100)
    blobs = {run: blobs_of(airflow_db, run) for run in (old, recent)}
    assert all(len(names) == 5 for names in blobs.values()), blobs  # produce x3, fan_out x2
    sizes = {blob.name: blob.size for blob in xcom.list_blobs()}

    cleanups = {}
    for label, args in {
        "dry": ["--xcom-blob-grace-hours", "0", "--dry-run"],
        "grace": [],  # the default 24 hours: every blob here is minutes old
        "real": ["--xcom-blob-grace-hours", "0"],
    }.items():
        dag_runs = dag_run_rows(airflow_db)
        result, sent = measured(env, lambda env, args=args: cleanup(env, "--retention-days", "30", *args))
        output = result.stdout + result.stderr
        deleted = dag_runs - dag_run_rows(airflow_db)
        blobs_after = {b.name for b in xcom.list_blobs()}
        cleanups[label] = Cleanup(result.returncode, output, blobs_after, runs_of(airflow_db), sent, deleted)
    return Scenario(xcom, (old, blobs[old]), (recent, blobs[recent]), cleanups, sizes, [first, second])


def test_every_cleanup_run_exits_0_after_both_steps(scenario):
    for label, run in scenario.cleanups.items():
        assert run.returncode == 0, f"{label}: exited {run.returncode}\n{run.output[-4000:]}"
        assert "Step 2/2" in run.output, run.output[-4000:]
        assert "XCom blob sweep of" in run.output, run.output[-4000:]


def test_rows_older_than_the_retention_go_and_recent_ones_stay(scenario):
    (old, _), (recent, _) = scenario.old, scenario.recent
    assert {old, recent} <= scenario.cleanups["dry"].runs, "the dry run deleted rows"
    for label in ("grace", "real"):
        assert old not in scenario.cleanups[label].runs, scenario.cleanups[label].output[-4000:]
        assert recent in scenario.cleanups[label].runs


def test_the_blobs_of_the_cleaned_rows_go_and_the_recent_runs_blobs_stay(scenario):
    real = scenario.cleanups["real"]
    assert not scenario.old[1] & real.blobs, real.output[-4000:]
    assert scenario.recent[1] <= real.blobs
    assert "deleted 5 " in real.output
    assert "kept 5 live" in real.output


def test_orphans_younger_than_the_grace_are_kept_for_a_later_run(scenario):
    grace = scenario.cleanups["grace"]
    assert scenario.old[1] | scenario.recent[1] <= grace.blobs
    assert "kept 10 younger than the cutoff" in grace.output
    assert "deleted 0 " in grace.output


def test_a_dry_run_deletes_no_row_and_no_blob(scenario):
    dry = scenario.cleanups["dry"]
    assert scenario.old[1] | scenario.recent[1] <= dry.blobs
    assert "DRY RUN" in dry.output
    assert "would delete 0 " in dry.output  # every row still references its blob


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --retention-days"),
        (["--retention-days", "0"], "argument --retention-days: expected a number from 1 to 36,500, got '0'"),
        (["--retention-days", "1e6"], "argument --retention-days: expected a number from 1 to 36,500, got '1e6'"),
        (["--retention-days", "30", "--xcom-blob-grace-hours", "-1"], "expected a number from 0 to 87,600, got '-1'"),
        (["--retention-days", "30", "--max-blob-deletions", "1.5"], "expected a whole number from 1 to"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument_and_touch_nothing(args, message):
    result = cleanup(dict(os.environ), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Step 1/2" not in result.stdout + result.stderr


def test_without_the_blob_backend_only_the_rows_are_cleaned(airflow_db):
    env = {**os.environ, "AIRFLOW__CORE__XCOM_BACKEND": "airflow.sdk.bases.xcom.BaseXCom"}
    result = cleanup(env, "--retention-days", "30", "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Step 2/2 skipped: [core] xcom_backend is not include.azblob_xcom_backend.WasbXComBackend" in output


def test_a_sweep_that_cannot_reach_the_storage_exits_3_after_the_rows_are_cleaned(airflow_db):
    dead = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    env = {**os.environ, "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(dead), "AIRFLOW__AZBLOB_XCOM__RETRIES": "0"}
    result, sent = measured(env, lambda env: cleanup(env, "--retention-days", "30", "--dry-run"))
    output = result.stdout + result.stderr
    assert result.returncode == 3, output[-4000:]
    assert "The XCom blob sweep failed (the rows are cleaned; the next run sweeps their blobs)" in output
    assert sent.total("db_cleanup.runs", outcome="sweep_failed") == 1


# --------------------------------------------------------------------------------------------------- metrics


def test_each_runs_xcom_blobs_are_counted_in_bytes_equal_to_the_blobs(scenario):
    for sent, (run, names) in zip(scenario.runs_metrics, (scenario.old, scenario.recent), strict=True):
        pushed = {"dag_id": FIXTURE_DAG, "direction": "push", "format": "json"}
        assert sent.total("azblob_xcom.bytes", **pushed) == sum(scenario.sizes[name] for name in names), run
        assert sent.total("azblob_xcom.values", direction="push", storage="blob") == 5
        assert {s.tags["task_id"] for s in sent.samples("azblob_xcom.bytes")} == {"produce", "fan_out"}


def test_the_cleanup_counts_the_rows_blobs_and_bytes_it_deleted_and_its_success(scenario):
    real = scenario.cleanups["real"].metrics
    old_blobs = scenario.old[1]
    assert real.total("db_cleanup.blobs_deleted") == len(old_blobs)
    assert real.total("db_cleanup.bytes_freed") == sum(scenario.sizes[name] for name in old_blobs)
    assert real.total("db_cleanup.runs", outcome="success") == 1
    (last,) = real.samples("db_cleanup.last_success")
    assert last.kind == "g"
    assert abs(last.value - datetime.now(UTC).timestamp()) < 600
    grace = scenario.cleanups["grace"]  # the old run's rows went in this run, its blobs in the next
    assert grace.dag_runs_deleted >= 1
    assert grace.metrics.total("db_cleanup.rows", table="dag_run") == grace.dag_runs_deleted
    assert grace.metrics.total("db_cleanup.blobs_deleted") == 0
    assert real.total("db_cleanup.rows", table="dag_run") == scenario.cleanups["real"].dag_runs_deleted == 0


def test_a_dry_run_counts_itself_and_no_deletion(scenario):
    dry = scenario.cleanups["dry"].metrics
    assert dry.total("db_cleanup.runs", outcome="dry_run") == 1
    assert not dry.samples("db_cleanup.rows") + dry.samples("db_cleanup.blobs_deleted")
    assert not dry.samples("db_cleanup.last_success")
