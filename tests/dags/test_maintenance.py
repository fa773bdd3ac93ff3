"""The retention DAG (dags/maintenance_blob_retention.py) run for real against Azurite and the metadata DB.

Setup (once per module): tests/dags/dags/retention_fixture.py runs with `airflow dags test`, leaving offloaded
XComs whose rows are live. Orphans are then made the way Airflow makes them: XCom rows deleted from the DB (what
`airflow db clean`, UI/REST deletes and DAG-run deletes do), and a blob with the same ids as a live row but not the
one its reference names (a re-run whose purge was missed). Blobs the sweep must not decide on are added too, and
task-log blobs in a separate log container. Azurite sets Last-Modified at upload only, so "old" is reached with a
retention of 0 days and the young-blob rule is proven by a run with a non-zero retention over the same blobs.

Then maintenance_blob_retention runs with `airflow dags test -c <params>`: a dry run, a young run, a run bounded
by max_deletions and a real run, in that order; each test asserts on the blobs left after one of them.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from include.azblob_xcom_backend import XComIds, parse_uri
from scripts.paths import ROOT
from tests.support.airflow import AIRFLOW_BIN, dags_test, wasb_connection, xcom_rows

pytestmark = pytest.mark.slow

FIXTURE_DAG = "retention_fixture"
LOG_PREFIX = "task-logs"


@dataclass
class Scenario:
    xcom: ContainerClient
    logs: ContainerClient
    live: dict[str, str]  # role -> blob name
    orphans: dict[str, str]
    undecidable: dict[str, str]
    old_logs: list[str]
    untouchable_logs: list[str]
    runs: dict[str, tuple[str, set[str], set[str]]]  # run -> (output, XCom blobs after, log blobs after)


def blob_name(uri: str) -> str:
    return parse_uri(uri)[1]


def names(container: ContainerClient) -> set[str]:
    return {b.name for b in container.list_blobs()}


def run_maintenance(env: dict[str, str], **params: object) -> str:
    """`airflow dags test maintenance_blob_retention -c <params>`; its output, or an assertion with the tail."""
    result = subprocess.run(
        [str(AIRFLOW_BIN), "dags", "test", "maintenance_blob_retention", "-c", json.dumps(params)],
        env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"maintenance run exited {result.returncode}:\n{output[-5000:]}"
    assert "sweep of" in output, f"no sweep summary in the output:\n{output[-5000:]}"
    return output


def upload_like_the_backend(container: ContainerClient, ids: XComIds, metadata: dict[str, str] | None) -> str:
    name = ids.blob_name("", "json.zstd")
    container.upload_blob(name, b"not read by the sweep", metadata=metadata)
    return name


def drop_xcom_row(db: Path, task_id: str, map_index: int, key: str) -> None:
    with sqlite3.connect(db) as conn:
        deleted = conn.execute(
            "DELETE FROM xcom WHERE dag_id = ? AND task_id = ? AND map_index = ? AND key = ?",
            (FIXTURE_DAG, task_id, map_index, key),
        ).rowcount
    assert deleted == 1


def break_xcom_row(db: Path, task_id: str, key: str) -> None:
    """Give a row the reference marker with an unusable uri: the sweep cannot tell which blob it meant."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE xcom SET value = ? WHERE dag_id = ? AND task_id = ? AND map_index = -1 AND key = ?",
            (json.dumps({"azblob_xcom_ref": 1, "uri": 5}), FIXTURE_DAG, task_id, key),
        )


@pytest.fixture(scope="module")
def scenario(airflow_db, azurite) -> Scenario:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    xcom = service.create_container(f"retention-{uuid.uuid4().hex[:10]}")
    logs = service.create_container(f"retention-logs-{uuid.uuid4().hex[:10]}")
    env = {
        **os.environ,
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": xcom.container_name,
        "AIRFLOW__AZBLOB_XCOM__THRESHOLD": "1024",
    }
    dags_test(FIXTURE_DAG, ROOT / "tests" / "dags" / "dags", env)
    rows = xcom_rows(airflow_db, FIXTURE_DAG)
    uri = {(task, index, key): value["uri"] for (task, index, key), value in rows.items()}

    live = {
        "produce return_value": blob_name(uri[("produce", -1, "return_value")]),
        "fan_out map_index 0": blob_name(uri[("fan_out", 0, "return_value")]),
    }
    orphans = {
        "row deleted": blob_name(uri[("produce", -1, "spare")]),
        "mapped row deleted": blob_name(uri[("fan_out", 1, "return_value")]),
    }
    drop_xcom_row(airflow_db, "produce", -1, "spare")
    drop_xcom_row(airflow_db, "fan_out", 1, "return_value")
    undecidable = {"row holds a broken reference": blob_name(uri[("produce", -1, "broken")])}
    break_xcom_row(airflow_db, "produce", "broken")

    run = unquote(live["produce return_value"].split("/")[1].removeprefix("run_id="))
    same_ids = XComIds(FIXTURE_DAG, run, "produce", -1, "return_value")
    orphans["same ids, not the referenced blob"] = upload_like_the_backend(xcom, same_ids, same_ids.blob_metadata())
    undecidable["no ids in metadata"] = upload_like_the_backend(xcom, same_ids, None)
    odd_key = XComIds(FIXTURE_DAG, run, "produce", -1, "odd?key")
    undecidable["key not addressable by URL"] = upload_like_the_backend(xcom, odd_key, odd_key.blob_metadata())
    elsewhere = XComIds(FIXTURE_DAG, run, "fan_out", 5, "return_value")
    undecidable["metadata disagrees with name"] = upload_like_the_backend(xcom, elsewhere, same_ids.blob_metadata())

    old_logs = [
        f"{LOG_PREFIX}/dag_id=etl/run_id=manual__2026-01-01T00:00:00+00:00/task_id=extract/attempt=1.log",
        f"{LOG_PREFIX}/dag_id=etl/run_id=manual__2026-01-01T00:00:00+00:00/task_id=fan/map_index=3/attempt=2.log",
    ]
    untouchable_logs = [f"{LOG_PREFIX}/README.txt", "other-prefix/dag_id=etl/attempt=1.log"]
    for name in old_logs + untouchable_logs:
        logs.upload_blob(name, b"log line\n")

    env |= {
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"wasb://{LOG_PREFIX}",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "wasb_default",
        "AIRFLOW__AZURE_REMOTE_LOGGING__REMOTE_WASB_LOG_CONTAINER": logs.container_name,
    }
    runs = {}
    for label, params in {
        "dry": {"xcom_retention_days": 0, "log_retention_days": 0, "dry_run": True},
        "young": {"xcom_retention_days": 1, "log_retention_days": 1},
        "bounded": {"xcom_retention_days": 0, "log_retention_days": 0, "max_deletions": 1},
        "real": {"xcom_retention_days": 0, "log_retention_days": 0},
    }.items():
        output = run_maintenance(env, **params)
        runs[label] = (output, names(xcom), names(logs))
    return Scenario(xcom, logs, live, orphans, undecidable, old_logs, untouchable_logs, runs)


def every_blob(scenario: Scenario) -> set[str]:
    return {*scenario.live.values(), *scenario.orphans.values(), *scenario.undecidable.values()}


def test_orphan_xcom_blobs_older_than_the_retention_are_deleted(scenario):
    _, after, _ = scenario.runs["real"]
    assert not set(scenario.orphans.values()) & after, scenario.runs["real"][0][-3000:]


def test_blobs_referenced_by_live_xcom_rows_are_kept_however_old(scenario):
    output, after, _ = scenario.runs["real"]
    assert set(scenario.live.values()) <= after
    # judged live by reading their rows (the maintenance runs' own offloaded summaries may add to the count)
    assert int(re.search(r"XCom blob sweep of .*?kept (\d+) live", output).group(1)) >= len(scenario.live)


def test_a_live_mapped_instance_is_kept_while_its_orphaned_sibling_goes(scenario):
    _, after, _ = scenario.runs["real"]
    assert scenario.live["fan_out map_index 0"] in after
    assert scenario.orphans["mapped row deleted"] not in after


def test_blobs_whose_ids_do_not_resolve_cleanly_are_skipped_with_a_reason_not_deleted(scenario):
    output, after, _ = scenario.runs["real"]
    assert set(scenario.undecidable.values()) <= after
    assert "no dag_id in its metadata" in output
    assert "cannot be looked up safely through the Execution API" in output
    assert "do not match its name" in output
    assert "broken reference" in output


def test_orphans_younger_than_the_retention_are_kept(scenario):
    output, after, log_after = scenario.runs["young"]
    assert every_blob(scenario) <= after
    assert set(scenario.old_logs) <= log_after
    assert "deleted 0 " in output
    assert "younger than the cutoff" in output


def test_dry_run_deletes_nothing_and_reports_what_it_would_delete(scenario):
    output, after, log_after = scenario.runs["dry"]
    assert every_blob(scenario) <= after
    assert set(scenario.old_logs) <= log_after
    assert "DRY RUN" in output
    for name in [*scenario.orphans.values(), *scenario.old_logs]:
        assert f"would delete {name}" in output


def test_max_deletions_bounds_each_sweep_and_says_so(scenario):
    output, after, log_after = scenario.runs["bounded"]
    dry_after, dry_logs = scenario.runs["dry"][1], scenario.runs["dry"][2]
    assert len(dry_after - after) == 1
    assert len(dry_logs - log_after) == 1
    assert "stopped at max_deletions" in output


def test_task_log_blobs_older_than_the_log_retention_are_deleted_and_others_left_alone(scenario):
    output, _, log_after = scenario.runs["real"]
    assert not set(scenario.old_logs) & log_after
    assert set(scenario.untouchable_logs) <= log_after
    assert "not a task log" in output
