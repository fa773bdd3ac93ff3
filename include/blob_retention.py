"""The XCom and task-log blob sweeps: what the retention DAG (dags/maintenance_blob_retention.py) and the metadata
DB cleanup (include/db_cleanup.py, the chart's db-cleanup CronJob) run.

An XCom blob older than the cutoff is deleted only when no XCom row references it: the caller passes how a row is
looked up (the Execution API inside a task, the metadata DB in the cleanup Job). A blob whose ids cannot be read or
safely looked up, or whose lookup fails, is skipped and reported, never deleted. A task-log blob (``*.log``) older
than the cutoff is deleted: nothing references logs. Deletions go in batches, bounded per run, and can be a dry run.
See docs/retention.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from include.azblob_xcom_backend import XComIds

log = logging.getLogger(__name__)

DEFAULT_LOG_RETENTION_DAYS = 30  # the retention DAG's default, and the lifecycle policy's (scripts/lifecycle_policy.py)
DEFAULT_XCOM_RETENTION_DAYS = 7  # the retention DAG's minimum age of an unreferenced XCom blob
DEFAULT_MAX_DELETIONS = 10_000  # the retention DAG's bound per sweep and run
# The Airflow Variables that give the retention DAG's defaults (a run's params win over them).
XCOM_RETENTION_VARIABLE = "blob_retention_xcom_days"
LOG_RETENTION_VARIABLE = "blob_retention_log_days"
MAX_DELETIONS_VARIABLE = "blob_retention_max_deletions"
BATCH_SIZE = 256  # Azure's limit of one blob-batch delete request
REPORTED_NAMES = 50  # names listed in the log and the returned summary, per category
# Characters that would change the meaning of an Execution API URL (query, fragment, escapes): an id holding
# one would be looked up under another id, and a "not found" answer could delete a live blob.
URL_UNSAFE = frozenset("?#%\\")


class UnresolvableBlob(Exception):
    """A blob's XCom ids cannot be determined or safely looked up: the sweep skips it."""


class LookupFailed(Exception):
    """The XCom row behind a blob could not be read for a reason other than "no such XCom"."""


# ------------------------------------------------------------------------------------------------ settings


def cutoff_for(days: float, now: datetime | None = None) -> datetime:
    """Blobs last modified before this instant are old enough to delete."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


@dataclass(frozen=True)
class LogLocation:
    """Where remote logging writes task logs, from Airflow's configuration."""

    conn_id: str
    container: str
    prefix: str


def remote_log_location() -> LogLocation | None:
    """The Blob location of task logs, or None when remote logging to Blob is off."""
    from airflow.sdk.configuration import conf

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return None
    base = conf.get("logging", "remote_base_log_folder", fallback="") or ""
    if not base.startswith("wasb"):
        return None
    conn_id = (conf.get("logging", "remote_log_conn_id", fallback="") or "").strip()
    if not conn_id:
        raise ValueError(
            "[logging] remote_log_conn_id is empty while remote logging to Blob is on: set it to the Azure "
            "connection of the log container (the log handler needs it too)."
        )
    container = conf.get("azure_remote_logging", "remote_wasb_log_container", fallback="airflow-logs")
    return LogLocation(conn_id=conn_id, container=container, prefix=base.removeprefix("wasb://").strip("/"))


# ----------------------------------------------------------------------------------------------- reporting


@dataclass
class SweepReport:
    """What one sweep saw and did; logged at INFO and returned as the task's XCom."""

    location: str
    cutoff: str
    dry_run: bool
    scanned: int = 0
    kept_live: int = 0
    kept_young: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    already_gone: int = 0
    stopped_at_limit: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    deleted_names: list[str] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < REPORTED_NAMES:
            self.skipped.append({"blob": name, "reason": reason})

    def log_summary(self, what: str) -> None:
        verb = "would delete" if self.dry_run else "deleted"
        log.info(
            "%s sweep of %s (cutoff %s%s): scanned %d, kept %d live, kept %d younger than the cutoff, "
            "%s %d (%s bytes), skipped %d%s",
            what,
            self.location,
            self.cutoff,
            ", DRY RUN" if self.dry_run else "",
            self.scanned,
            self.kept_live,
            self.kept_young,
            verb,
            self.deleted,
            f"{self.deleted_bytes:,}",
            self.skipped_count,
            ", stopped at max_deletions: run again to continue" if self.stopped_at_limit else "",
        )
        for name in self.deleted_names:
            log.info("  %s %s", verb, name)
        for entry in self.skipped:
            log.warning("  skipped %s: %s", entry["blob"], entry["reason"])
        if self.skipped_count > len(self.skipped):
            log.warning("  ... and %d more skipped", self.skipped_count - len(self.skipped))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- deletions


class Deleter:
    """Deletes blobs in batches of 256, counts them, honours dry_run and the max_deletions bound."""

    def __init__(self, container: ContainerClient, report: SweepReport, max_deletions: int) -> None:
        self.container = container
        self.report = report
        self.max_deletions = max_deletions
        self.pending: list[tuple[str, int]] = []

    @property
    def full(self) -> bool:
        return self.report.deleted + len(self.pending) >= self.max_deletions

    def add(self, name: str, size: int) -> None:
        self.pending.append((name, size))
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self.report.dry_run:
            gone: set[str] = set()
        else:
            gone = self._delete([name for name, _ in batch])
        for name, size in batch:
            if name in gone:
                self.report.already_gone += 1
                continue
            self.report.deleted += 1
            self.report.deleted_bytes += size
            if len(self.report.deleted_names) < REPORTED_NAMES:
                self.report.deleted_names.append(name)

    def _delete(self, names: list[str]) -> set[str]:
        """Delete ``names`` in one batch request; the names that were already gone (404). An error on any other
        blob fails the task, naming them."""
        responses = list(self.container.delete_blobs(*names, raise_on_any_failure=False))
        if len(responses) == len(names):
            pairs = zip(names, responses, strict=True)
            answers = [self._delete_one(name) if r.status_code == 400 else r for name, r in pairs]
        else:  # a malformed batch answer (see _delete_one): one by one
            answers = [self._delete_one(name) for name in names]
        gone, failed = set(), []
        for name, answer in zip(names, answers, strict=True):
            if answer.status_code == 404:
                gone.add(name)
            elif answer.status_code >= 300:
                failed.append(f"{name} (HTTP {answer.status_code} {answer.reason})")
        if failed:
            raise RuntimeError(f"Could not delete {len(failed)} blob(s) in {self.container.container_name}: {failed}")
        return gone

    def _delete_one(self, name: str) -> Any:
        """Delete one blob on its own: for a batch sub-request refused as invalid input, or a batch answer that does
        not match the request. Azurite answers batches so when it is addressed by a host name, as a Kubernetes
        Service is (Azure/Azurite#2195); Azure does not, and a request that is really invalid fails here too."""
        from azure.core.exceptions import HttpResponseError

        try:
            self.container.delete_blob(name)
        except HttpResponseError as err:
            return SimpleNamespace(status_code=err.status_code, reason=err.reason)
        return SimpleNamespace(status_code=202, reason="Accepted")


# ------------------------------------------------------------------------------------------------ XCom sweep


def xcom_ids_of(name: str, metadata: dict[str, str] | None, prefix: str) -> XComIds:
    """The XCom ids of a blob, from its metadata, checked against its name and the Execution API's URL rules."""
    from include.azblob_xcom_backend import XComIds, metadata_ids

    try:
        raw = metadata_ids(metadata or {})
    except KeyError as err:
        raise UnresolvableBlob(f"no {err.args[0]} in its metadata: not written by the XCom backend") from None
    try:
        map_index = int(raw["map_index"])
    except ValueError:
        raise UnresolvableBlob(f"map_index {raw['map_index']!r} in its metadata is not a whole number") from None
    ids = XComIds(raw["dag_id"], raw["run_id"], raw["task_id"], map_index, raw["key"])
    # The backend names blobs after the ids: a blob whose name disagrees was renamed, copied or forged.
    expected_folder = ids.blob_name(prefix, "x").rsplit("/", 1)[0] + "/"
    if not name.startswith(expected_folder) or "/" in name[len(expected_folder) :]:
        raise UnresolvableBlob(f"its metadata ids do not match its name (expected it under {expected_folder})")
    for id_name, value in ids.as_dict().items():
        if not _addressable(value, allow_slash=id_name == "key"):
            raise UnresolvableBlob(f"{id_name} {value!r} cannot be looked up safely through the Execution API")
    return ids


def _addressable(value: str, *, allow_slash: bool) -> bool:
    """True when ``value`` reaches the Execution API's XCom route unchanged as a URL path part."""
    if not value or any(c in URL_UNSAFE or not c.isprintable() for c in value):
        return False
    parts = value.split("/")
    if not allow_slash and len(parts) > 1:
        return False
    return all(part not in ("", ".", "..") for part in parts)  # dot segments are normalised away by URL clients


def referenced_uri(ids: XComIds) -> str | None:
    """The uri of the reference stored in the XCom row of ``ids``; None when there is no such row or its value
    is not a reference. Reads the raw row through the Execution API (the task supervisor's GetXCom): no blob is
    downloaded and nothing is deserialized. The API answers "not found" with a null value."""
    from airflow.sdk.bases.xcom import BaseXCom

    try:
        result = BaseXCom._get_xcom_db_ref(
            key=ids.key, dag_id=ids.dag_id, task_id=ids.task_id, run_id=ids.run_id, map_index=ids.map_index
        )
    except Exception as err:  # any failure means "unknown", and unknown is never deleted
        raise LookupFailed(f"XCom lookup failed: {type(err).__name__}: {err}") from err
    return uri_in(result.value)


def uri_in(value: Any) -> str | None:
    """The uri of the backend reference an XCom row's raw value holds; None when it holds an ordinary value."""
    from include.azblob_xcom_backend import BlobReference, XComReferenceError

    try:
        ref = BlobReference.from_json(value)
    except XComReferenceError as err:
        raise LookupFailed(f"its XCom row holds a broken reference: {err}") from None
    return None if ref is None else ref.uri


def sweep_xcom_container(
    container: ContainerClient,
    prefix: str,
    cutoff: datetime,
    *,
    dry_run: bool,
    max_deletions: int,
    lookup: Callable[[XComIds], str | None],
) -> SweepReport:
    """One pass over the XCom blobs: keep young and live ones, delete orphans, skip what cannot be decided."""
    from include.azblob_xcom_backend import URI_SCHEME

    report = SweepReport(location=f"{container.container_name}/{prefix}", cutoff=cutoff.isoformat(), dry_run=dry_run)
    deleter = Deleter(container, report, max_deletions)
    for blob in _list(container, prefix, metadata=True):
        report.scanned += 1
        if blob.last_modified >= cutoff:
            report.kept_young += 1
            continue
        try:
            ids = xcom_ids_of(blob.name, blob.metadata, prefix)
            live = lookup(ids) == f"{URI_SCHEME}{container.container_name}/{blob.name}"
        except (UnresolvableBlob, LookupFailed) as err:
            report.skip(blob.name, str(err))
            continue
        if live:
            report.kept_live += 1
            continue
        if deleter.full:
            report.stopped_at_limit = True
            break
        deleter.add(blob.name, blob.size)
    deleter.flush()
    return report


# ------------------------------------------------------------------------------------------------- log sweep


def sweep_log_container(
    container: ContainerClient, prefix: str, cutoff: datetime, *, dry_run: bool, max_deletions: int
) -> SweepReport:
    """One pass over the task-log blobs (``*.log`` under the prefix): delete those older than the cutoff."""
    report = SweepReport(location=f"{container.container_name}/{prefix}", cutoff=cutoff.isoformat(), dry_run=dry_run)
    deleter = Deleter(container, report, max_deletions)
    for blob in _list(container, prefix, metadata=False):
        report.scanned += 1
        if not blob.name.endswith(".log"):
            report.skip(blob.name, "not a task log (name does not end in .log)")
        elif blob.last_modified >= cutoff:
            report.kept_young += 1
        elif deleter.full:
            report.stopped_at_limit = True
            break
        else:
            deleter.add(blob.name, blob.size)
    deleter.flush()
    return report


def _list(container: ContainerClient, prefix: str, *, metadata: bool) -> Iterable[Any]:
    return container.list_blobs(
        name_starts_with=f"{prefix}/" if prefix else None, include=["metadata"] if metadata else None
    )


def open_container(conn_id: str, name: str, what: str, retries: int | None = None) -> ContainerClient | None:
    """The container to sweep, through the Airflow connection ``conn_id`` with ``retries`` per request (the
    backend's ``[azblob_xcom] retries``); None (logged) when it does not exist."""
    from include.azblob_xcom_backend import service_client

    container = service_client(conn_id, retries).get_container_client(name)
    if container.exists():
        return container
    log.info("%s container %s does not exist: nothing to sweep.", what, name)
    return None


def sweep(
    what: str,
    sweeper: Callable[..., SweepReport],
    *,
    conn_id: str,
    container_name: str,
    prefix: str,
    cutoff: datetime,
    dry_run: bool,
    max_deletions: int,
    retries: int | None = None,
) -> dict[str, Any]:
    """One sweep (the retention DAG's tasks, the db-cleanup CronJob's second step): open the container, run
    ``sweeper`` (sweep_xcom_container with its lookup, or sweep_log_container) over it, log its summary, return it.
    Each request is retried ``retries`` times (None: the connection's own setting)."""
    container = open_container(conn_id, container_name, what, retries)
    if container is None:
        return {"location": container_name, "scanned": 0}
    report = sweeper(container, prefix, cutoff, dry_run=dry_run, max_deletions=max_deletions)
    report.log_summary(f"{what} blob")
    return report.as_dict()


def resolve_setting(param: Any, variable: str, default: float, *, minimum: float, integer: bool = False) -> float:
    """A retention DAG setting: the run's param if given, else the Airflow Variable if set, else ``default``;
    validated (a bad value raises naming where it came from)."""
    from airflow.sdk import Variable

    source = "param"
    raw = param
    if raw is None:
        source, raw = f"Variable {variable}", Variable.get(variable, default=None)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{source} {variable}: expected {kind} >= {minimum}, got {raw!r}")
    return value
