"""Print the Azure Storage lifecycle-management policy for a release's task logs and XCom blobs, from the chart.

    make lifecycle-policy VALUES=my-values.yaml > policy.json
    az storage account management-policy create --account-name <account> --resource-group <group> \\
        --policy @policy.json

The blob locations come from the airflow.cfg the chart renders with those values (the same settings the backend
and the log handler write with), so the rules match what is written:

- task logs: ``<log container>/<remote log prefix>/`` deleted --log-days (default 30, the retention DAG's default)
  after their last modification. Nothing references logs.
- XCom blobs: ``<xcom container>/<prefix>/`` deleted ``jobs.dbCleanup.retentionDays`` + --margin-days (default 7)
  after upload. The db-cleanup CronJob deletes every XCom row older than retentionDays (and the blobs it orphaned)
  every day, so a blob that old is referenced by no row even when some cleanup runs failed. Without the CronJob (or
  with it in dry-run mode) no XCom rule is written: age alone cannot tell a live XCom blob from an orphan (the
  retention DAG can). Turning the CronJob off later means removing that rule from the account's policy.

Azurite has no lifecycle engine: there the CronJob and the maintenance_blob_retention DAG do the same work.
docs/operations.md explains each rule. config/azure/lifecycle-policy.json is this output for the chart's defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.blob_retention import DEFAULT_LOG_RETENTION_DAYS
from scripts import chart

DEFAULT_MARGIN_DAYS = 7


def rendered(values: list[Path]) -> list[dict[str, Any]]:
    try:
        return chart.template(values)
    except chart.HelmError as err:
        raise SystemExit(f"helm template failed with these values:\n{err.stderr}") from err


def cleanup_retention_days(objects: list[dict[str, Any]]) -> float | None:
    """--retention-days of the db-cleanup CronJob; None when it is off or only a dry run (then no row is deleted,
    and an old XCom blob may still be live)."""
    for o in objects:
        if o["kind"] == "CronJob" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "db-cleanup":
            args = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
            return None if "--dry-run" in args else float(args[args.index("--retention-days") + 1])
    return None


def prefix_match(container: str, prefix: str) -> str:
    return f"{container}/{prefix.strip('/')}/" if prefix.strip("/") else f"{container}/"


def rule(name: str, prefix: str, days: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "name": name,
        "type": "Lifecycle",
        "definition": {
            "filters": {"blobTypes": ["blockBlob"], "prefixMatch": [prefix]},
            "actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": days}}},
        },
    }


def policy(objects: list[dict[str, Any]], *, log_days: int, margin_days: int) -> dict[str, Any]:
    cfg = chart.airflow_cfg(objects)
    rules = []
    if cfg.getboolean("logging", "remote_logging", fallback=False):
        folder = cfg["logging"]["remote_base_log_folder"].removeprefix("wasb://")
        container = cfg["azure_remote_logging"]["remote_wasb_log_container"]
        rules.append(rule("airflow-task-logs", prefix_match(container, folder), log_days))
    retention = cleanup_retention_days(objects)
    if cfg.has_section("azblob_xcom") and retention is not None:
        where = prefix_match(cfg["azblob_xcom"]["container"], cfg["azblob_xcom"].get("prefix", ""))
        rules.append(rule("airflow-xcom-after-db-cleanup", where, math.ceil(retention) + margin_days))
    return {"rules": rules}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/lifecycle_policy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=Path, action="append", default=[], help="a values file (repeatable)")
    parser.add_argument("--log-days", type=int, default=DEFAULT_LOG_RETENTION_DAYS, help="age of deleted logs")
    parser.add_argument("--margin-days", type=int, default=DEFAULT_MARGIN_DAYS, help="XCom: beyond retentionDays")
    args = parser.parse_args(argv)
    for path in args.values:
        if not path.is_file():
            parser.error(f"--values {path}: no such file")
    if args.log_days < 1 or args.margin_days < 1:
        parser.error("--log-days and --margin-days must be >= 1 (Azure counts whole days)")
    result = policy(rendered(args.values), log_days=args.log_days, margin_days=args.margin_days)
    if not result["rules"]:
        print("No rule: remote logging and the db-cleanup CronJob are both off in these values.", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
