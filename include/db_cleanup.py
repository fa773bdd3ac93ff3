"""Metadata DB cleanup: `airflow db clean` of rows older than a retention, then the XCom blobs it orphaned.

Why: Airflow never deletes old DAG runs, task instances, XComs, audit-log or job rows by itself, and the metadata
DB grows for ever. `airflow db clean` deletes them, but an XCom row deleted there leaves its blob behind in Azure
Blob Storage. So this runs both, in this order, and is what the chart's db-cleanup CronJob runs:

    python -m include.db_cleanup --retention-days 90 [--xcom-blob-grace-hours 24] [--max-blob-deletions N]
                                 [--batch-size N] [--dry-run]

1. ``airflow db clean --clean-before-timestamp <now - retention> --skip-archive --yes --error-on-cleanup-failure``
   (every table Airflow's cleanup knows; no archive tables, the point is to free space).
2. The XCom orphan sweep of include/blob_retention.py over the backend's container ([azblob_xcom] container,
   prefix, conn_id), with each XCom row read from the metadata DB: a blob older than the grace period that no row
   references is deleted. The grace covers a task between uploading its blob and writing its row. A blob that
   cannot be decided is kept and reported.

Step 2 is skipped when the Blob XCom backend is not Airflow's ``[core] xcom_backend``. Exit status: 0 when both
steps ran (skipped blobs are warnings), 1 when `airflow db clean` failed (nothing swept), 2 for bad arguments, 3 when
the sweep failed (the rows are cleaned; the next run sweeps their blobs).

Each run sends its outcome, the rows deleted per table, the blobs deleted and bytes freed, and the time of its last
success as metrics (include/metrics.py: db_cleanup.*), where ``[metrics]`` sends Airflow's own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from include import metrics

if TYPE_CHECKING:
    from include.azblob_xcom_backend import XComIds

log = logging.getLogger("include.db_cleanup")
MAX_RETENTION_DAYS = 36_500  # bounds that keep the date arithmetic in range
MAX_GRACE_HOURS = 87_600


def in_range(minimum: float, maximum: float, *, integer: bool = False) -> Any:
    """An argparse type: a number (a whole one if ``integer``) from ``minimum`` to ``maximum``."""
    kind = "a whole number" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"expected {kind} from {minimum:g} to {maximum:,}, got {text!r}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m include.db_cleanup",
        description="airflow db clean of old metadata rows, then the sweep of the XCom blobs no row references.",
    )
    whole = in_range(1, 10**9, integer=True)
    parser.add_argument(
        "--retention-days", type=in_range(1, MAX_RETENTION_DAYS), required=True, help="delete rows older than this"
    )
    parser.add_argument(
        "--xcom-blob-grace-hours",
        type=in_range(0, MAX_GRACE_HOURS),
        default=24.0,
        help="keep an unreferenced XCom blob younger than this: a task may be between uploading it and writing its "
        "row (0 only where no task runs meanwhile)",
    )
    parser.add_argument("--max-blob-deletions", type=whole, default=10_000, help="bound on blobs per run")
    parser.add_argument("--batch-size", type=whole, help="rows per `airflow db clean` transaction")
    parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    return parser


def db_clean_argv(args: argparse.Namespace, now: datetime) -> list[str]:
    """The `airflow db clean` command line for ``args``."""
    cutoff = now - timedelta(days=args.retention_days)
    argv = ["db", "clean", "--clean-before-timestamp", cutoff.isoformat(), "--skip-archive", "--yes"]
    argv.append("--error-on-cleanup-failure")
    if args.batch_size:
        argv += ["--batch-size", str(args.batch_size)]
    if args.dry_run:
        argv.append("--dry-run")
    return argv


class RowsFound(io.TextIOBase):
    """Passes `airflow db clean`'s output through and reads, per table, the rows it found to delete: Airflow prints
    "Checking table <name>" and then "Found <n> rows meeting deletion criteria." and returns no counts (the two lines
    are pinned by tests/dags/test_db_cleanup.py)."""

    TABLE = re.compile(r"Checking table (\S+)$")
    FOUND = re.compile(r"Found (\d+) rows meeting deletion criteria\.$")

    def __init__(self, out: Any) -> None:
        self.out = out
        self.rows: dict[str, int] = {}
        self._table: str | None = None
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.out.write(text)
        *lines, self._line = (self._line + text).split("\n")
        for line in lines:
            if table := self.TABLE.match(line.strip()):
                self._table = table[1]
            elif (found := self.FOUND.match(line.strip())) and self._table:
                self.rows[self._table] = int(found[1])
                self._table = None
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def run_airflow(argv: list[str], stdout: Any = None) -> int:
    """Run the airflow CLI in this process (one interpreter start instead of two), its output to ``stdout`` (default
    sys.stdout); its exit status."""
    from airflow.__main__ import main as airflow

    sys.argv = ["airflow", *argv]
    try:
        with contextlib.redirect_stdout(stdout or sys.stdout):
            airflow()
    except SystemExit as exit_:  # sys.exit() and sys.exit(0) are success
        if exit_.code is None or exit_.code == 0:
            return 0
        log.error("airflow %s exited: %s", argv[1], exit_.code)
        return exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # e.g. the RuntimeError --error-on-cleanup-failure raises
        log.exception("airflow %s failed", argv[1])
        return 1
    return 0


def db_referenced_uri(ids: XComIds) -> str | None:
    """The uri of the reference in the XCom row of ``ids``, read from the metadata DB; None when there is no such
    row or its value is not a reference (the Execution API's answer inside a task, without the API)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from include.blob_retention import LookupFailed, uri_in

    query = select(XComModel.value).where(
        XComModel.dag_id == ids.dag_id,
        XComModel.run_id == ids.run_id,
        XComModel.task_id == ids.task_id,
        XComModel.map_index == ids.map_index,
        XComModel.key == ids.key,
    )
    try:
        with create_session() as session:
            values = session.execute(query).scalars().all()
    except Exception as err:  # unknown is never deleted
        raise LookupFailed(f"XCom lookup failed: {type(err).__name__}: {err}") from err
    if not values:
        return None
    value = values[0]
    if isinstance(value, str):  # a value stored through XComModel.serialize_value is JSON text in the JSON column
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return uri_in(value)


def sweep_xcom_blobs(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """The XCom orphan sweep over the backend's container, rows read from the metadata DB."""
    from include.azblob_xcom_backend import BackendConfig
    from include.blob_retention import sweep, sweep_xcom_container

    config = BackendConfig.from_airflow()
    return sweep(
        "XCom",
        partial(sweep_xcom_container, lookup=db_referenced_uri),
        conn_id=config.conn_id,
        container_name=config.container,
        prefix=config.prefix,
        cutoff=now - timedelta(hours=args.xcom_blob_grace_hours),
        dry_run=args.dry_run,
        max_deletions=args.max_blob_deletions,
        retries=config.retries,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status, outcome = clean_and_sweep(args)
    metrics.count("db_cleanup.runs", outcome=outcome)
    if outcome == "success":
        metrics.gauge("db_cleanup.last_success", time.time())
    return status


def clean_and_sweep(args: argparse.Namespace) -> tuple[int, str]:
    """Both steps; the exit status and the outcome the db_cleanup.runs metric counts."""
    now = datetime.now(UTC)
    clean = db_clean_argv(args, now)
    log.info("Step 1/2: airflow %s", " ".join(clean))
    rows = RowsFound(sys.stdout)
    status = run_airflow(clean, rows)
    if status != 0:
        log.error("airflow db clean exited %d: no XCom blob swept (a blob is only judged after its rows are).", status)
        return 1, "db_clean_failed"
    done = "dry_run" if args.dry_run else "success"
    if not args.dry_run:
        for table, count in rows.rows.items():
            metrics.count("db_cleanup.rows", count, table=table)
    from airflow.configuration import conf

    from include.azblob_xcom_backend import WasbXComBackend

    backend = f"{WasbXComBackend.__module__}.{WasbXComBackend.__qualname__}"
    if conf.get("core", "xcom_backend", fallback="") != backend:
        log.info("Step 2/2 skipped: [core] xcom_backend is not %s, so no XCom is in Blob.", backend)
        return 0, done
    log.info("Step 2/2: XCom blobs no row references, older than %s hours", f"{args.xcom_blob_grace_hours:g}")
    try:
        report = sweep_xcom_blobs(args, now)
    except Exception:
        log.exception("The XCom blob sweep failed (the rows are cleaned; the next run sweeps their blobs)")
        return 3, "sweep_failed"
    if not args.dry_run:
        metrics.count("db_cleanup.blobs_deleted", report.get("deleted", 0))
        metrics.count("db_cleanup.bytes_freed", report.get("deleted_bytes", 0))
    return 0, done


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
