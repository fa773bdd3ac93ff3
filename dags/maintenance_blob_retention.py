"""Maintenance: delete orphan XCom blobs and old task-log blobs from Azure Blob Storage, daily.

Why: the Blob XCom backend deletes a value's blob only when Airflow purges it, which happens when a task instance
starts a new attempt. ``airflow db clean``, deleting XComs in the UI or REST API, and deleting DAG runs remove the
XCom rows but never the blobs: those orphans accumulate for ever. Task logs shipped to Blob by remote logging are
never deleted by Airflow at all.

What it does (two independent tasks, one listing pass each):

* ``sweep_xcom_blobs`` lists the XCom container (``[azblob_xcom] container`` / ``prefix`` / ``conn_id``, the
  backend's own settings) with blob metadata. A blob younger than the XCom retention is kept (a task may be
  between uploading it and writing its row). For an older blob it reads the XCom ids from the blob's metadata,
  reads that XCom's raw row through the Execution API (no download, no deserialization) and keeps the blob if the
  row's value is a reference to exactly this blob, whatever its age. Otherwise the blob is an orphan and is
  deleted: every push writes a new, uniquely named blob, so an unreferenced blob can never be referenced again.
  A blob whose ids cannot be read or addressed, or whose lookup fails for any reason other than "no such XCom",
  is skipped and reported, never deleted.
* ``sweep_task_log_blobs`` lists ``*.log`` blobs under the remote log folder (``[logging] remote_base_log_folder``
  = ``wasb://<prefix>``, ``[azure_remote_logging] remote_wasb_log_container``, ``[logging] remote_log_conn_id``)
  and deletes those older than the log retention. Nothing references logs, so age alone decides. It does nothing
  when ``[logging] remote_logging`` is off.

Configuration, per run (trigger with config) or as defaults (Airflow Variables), else the constants below:

| param | default from Airflow Variable | else | meaning |
|---|---|---|---|
| ``xcom_retention_days`` | ``blob_retention_xcom_days`` | 7 | minimum age (days) of an unreferenced XCom blob |
| ``log_retention_days`` | ``blob_retention_log_days`` | 30 | age (days) after which a task-log blob is deleted |
| ``max_deletions`` | ``blob_retention_max_deletions`` | 10000 | per task and run; the sweep stops there |
| ``dry_run`` | (none) | false | report what would be deleted, delete nothing |

Each task logs one summary at INFO (scanned, kept live, kept young, deleted, skipped with reasons) and returns it
as its XCom. See docs/retention.md.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from airflow.sdk import Param, dag, task

from include.blob_retention import (
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_MAX_DELETIONS,
    DEFAULT_XCOM_RETENTION_DAYS,
    LOG_RETENTION_VARIABLE,
    MAX_DELETIONS_VARIABLE,
    XCOM_RETENTION_VARIABLE,
    cutoff_for,
    referenced_uri,
    remote_log_location,
    resolve_setting,
    sweep,
    sweep_log_container,
    sweep_xcom_container,
)

log = logging.getLogger(__name__)


def max_deletions(params: dict[str, Any]) -> int:
    return int(
        resolve_setting(
            params.get("max_deletions"), MAX_DELETIONS_VARIABLE, DEFAULT_MAX_DELETIONS, minimum=1, integer=True
        )
    )


@dag(
    dag_id="maintenance_blob_retention",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "xcom", "logs", "retention"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "xcom_retention_days": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description=f"Keep orphan XCom blobs younger than this many days. Empty: Variable "
            f"{XCOM_RETENTION_VARIABLE}, else {DEFAULT_XCOM_RETENTION_DAYS}. Live blobs are always kept.",
        ),
        "log_retention_days": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description=f"Delete task-log blobs older than this many days. Empty: Variable "
            f"{LOG_RETENTION_VARIABLE}, else {DEFAULT_LOG_RETENTION_DAYS}.",
        ),
        "max_deletions": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description=f"Safety bound per task and run. Empty: Variable {MAX_DELETIONS_VARIABLE}, "
            f"else {DEFAULT_MAX_DELETIONS}.",
        ),
        "dry_run": Param(False, type="boolean", description="Report what would be deleted; delete nothing."),
    },
    doc_md=__doc__,
)
def maintenance_blob_retention():
    @task(multiple_outputs=False)
    def sweep_xcom_blobs(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from include.azblob_xcom_backend import BackendConfig

        params = params or {}
        config = BackendConfig.from_airflow()
        days = resolve_setting(
            params.get("xcom_retention_days"), XCOM_RETENTION_VARIABLE, DEFAULT_XCOM_RETENTION_DAYS, minimum=0
        )
        return sweep(
            "XCom", partial(sweep_xcom_container, lookup=referenced_uri),
            conn_id=config.conn_id, container_name=config.container, prefix=config.prefix, cutoff=cutoff_for(days),
            dry_run=bool(params.get("dry_run")), max_deletions=max_deletions(params), retries=config.retries,
        )  # fmt: skip

    @task(multiple_outputs=False)
    def sweep_task_log_blobs(params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        location = remote_log_location()
        if location is None:
            log.info("Remote logging to Blob is off ([logging] remote_logging / remote_base_log_folder): skipped.")
            return {"location": None, "scanned": 0}
        days = resolve_setting(
            params.get("log_retention_days"), LOG_RETENTION_VARIABLE, DEFAULT_LOG_RETENTION_DAYS, minimum=0
        )
        return sweep(
            "Task-log", sweep_log_container,
            conn_id=location.conn_id, container_name=location.container, prefix=location.prefix,
            cutoff=cutoff_for(days), dry_run=bool(params.get("dry_run")), max_deletions=max_deletions(params),
        )  # fmt: skip

    sweep_xcom_blobs()
    sweep_task_log_blobs()


maintenance_blob_retention()
