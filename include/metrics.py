"""The project's own metrics: the Blob XCom backend's, the db-cleanup's and the failure alerts'.

They go through Airflow's Stats exactly as Airflow's own metrics do, so ``[metrics]`` decides whether and where they
are sent: nowhere by default, to the chart's statsd_exporter with ``metrics.enabled`` (there they become Prometheus
metrics named ``airflow_<name with dots as underscores>``, their tags labels). Sending is UDP and never raises: a
metric must not change what it measures.

METRICS is the one list of names, kinds and tags; docs/operations.md's table ("The project's own metrics") is kept
equal to it by tests/xcom/test_metric_table.py, and a name or tag not listed here is refused when it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Metric:
    kind: str  # counter, timer (seconds) or gauge
    tags: tuple[str, ...]
    meaning: str


BLOB_TAGS = ("dag_id", "task_id", "direction", "format")  # dag_id, task_id: the task that wrote the value
METRICS = {
    "azblob_xcom.values": Metric(
        "counter",
        ("direction", "storage"),
        "XCom values through the backend; direction push or pull, storage inline (in the DB row) or blob",
    ),
    "azblob_xcom.bytes": Metric(
        "counter", BLOB_TAGS, "bytes uploaded (push) or downloaded (pull) as XCom blobs; format parquet or json"
    ),
    "azblob_xcom.duration": Metric(
        "timer",
        BLOB_TAGS,
        "seconds to store a blob value (encode, checksum, upload) or to read one (download, verify, decode)",
    ),
    "azblob_xcom.errors": Metric(
        "counter",
        ("direction", "error"),
        "pushes and pulls that failed; error integrity, not_found, storage, reference, serialization or config",
    ),
    "azblob_xcom.purges": Metric(
        "counter", ("outcome",), "blobs of cleared XComs; outcome deleted, gone (already), refused or failed"
    ),
    "db_cleanup.runs": Metric(
        "counter", ("outcome",), "db-cleanup runs; outcome success, dry_run, db_clean_failed or sweep_failed"
    ),
    "db_cleanup.last_success": Metric("gauge", (), "Unix time at which the last db-cleanup run finished both steps"),
    "db_cleanup.rows": Metric("counter", ("table",), "rows `airflow db clean` deleted, per table (not cascades)"),
    "db_cleanup.blobs_deleted": Metric("counter", (), "XCom blobs the db-cleanup sweep deleted (no row used them)"),
    "db_cleanup.bytes_freed": Metric("counter", (), "bytes of the XCom blobs the db-cleanup sweep deleted"),
    "failure_alerts": Metric(
        "counter",
        ("outcome",),
        "failure alerts; outcome sent, refused (the webhook answered an error), failed (unreachable) or dropped "
        "(the scheduler's queue was full)",
    ),
}


@cache
def _stats() -> Any:
    """The Task SDK's Stats, set up from ``[metrics]`` once in this process: a task's runner has done so already, but
    the db-cleanup or the scheduler's listener may be the first to send from theirs."""
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=False),
    )
    return stats


def _checked(name: str, kind: str, tags: dict[str, Any]) -> dict[str, str]:
    metric = METRICS.get(name)
    if metric is None or metric.kind != kind or set(tags) != set(metric.tags):
        raise ValueError(f"metric {name} ({kind}, tags {sorted(tags)}) is not as include/metrics.py METRICS lists it")
    return {tag: str(value) for tag, value in tags.items()}


def count(name: str, value: int = 1, **tags: Any) -> None:
    _stats().incr(name, value, tags=_checked(name, "counter", tags))


def seconds(name: str, value: float, **tags: Any) -> None:
    _stats().timing(name, timedelta(seconds=value), tags=_checked(name, "timer", tags))


def gauge(name: str, value: float, **tags: Any) -> None:
    _stats().gauge(name, value, tags=_checked(name, "gauge", tags))
