"""scripts/lifecycle_policy.py (`make lifecycle-policy`): the Azure lifecycle rules follow the chart's values and
match the blob names the XCom backend and Airflow's log handler write."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from include.azblob_xcom_backend import XComIds
from scripts.lifecycle_policy import policy, rendered
from scripts.paths import ROOT

SCRIPT = ROOT / "scripts" / "lifecycle_policy.py"
AKS = ROOT / "config" / "profiles" / "aks-example.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=120
    )


def rules(result: dict) -> dict[str, tuple[str, int]]:
    """rule name -> (its one prefix, days after modification)."""
    out = {}
    for rule in result["rules"]:
        assert rule["enabled"] is True
        assert rule["type"] == "Lifecycle"
        assert rule["definition"]["filters"]["blobTypes"] == ["blockBlob"]
        (prefix,) = rule["definition"]["filters"]["prefixMatch"]
        delete = rule["definition"]["actions"]["baseBlob"]["delete"]
        out[rule["name"]] = (prefix, delete["daysAfterModificationGreaterThan"])
    return out


def values_file(tmp_path, values: dict):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_the_committed_policy_is_the_scripts_output_for_the_default_values() -> None:
    done = run()
    assert done.returncode == 0, done.stderr
    committed = json.loads((ROOT / "config" / "azure" / "lifecycle-policy.json").read_text())
    assert json.loads(done.stdout) == committed, "rerun: make -s lifecycle-policy > config/azure/lifecycle-policy.json"
    assert rules(committed) == {
        "airflow-task-logs": ("airflow-logs/logs/", 30),
        "airflow-xcom-after-db-cleanup": ("airflow-xcom/", 97),
    }


def test_the_rules_match_the_names_the_backend_and_the_log_handler_write() -> None:
    found = rules(json.loads(run("--values", str(AKS)).stdout))
    values = yaml.safe_load(AKS.read_text())
    xcom_prefix, _ = found["airflow-xcom-after-db-cleanup"]
    blob = XComIds("etl", "manual__2026-01-01T00:00:00+00:00", "extract", -1, "return_value").blob_name(
        values["xcom"]["prefix"], "parquet"
    )
    assert f"{values['xcom']['container']}/{blob}".startswith(xcom_prefix)
    assert xcom_prefix == "airflow-xcom/prod/xcom/"
    log_prefix, _ = found["airflow-task-logs"]
    log_blob = f"{values['logs']['remote']['prefix']}/dag_id=etl/run_id=r/task_id=extract/attempt=1.log"
    assert f"{values['logs']['remote']['container']}/{log_blob}".startswith(log_prefix)


def test_the_xcom_rule_follows_the_cleanup_retention_and_needs_the_cronjob_deleting_rows(tmp_path) -> None:
    longer = rules(policy(rendered([values_file(tmp_path, {"jobs": {"dbCleanup": {"retentionDays": 30.5}}})]),
                          log_days=14, margin_days=3))  # fmt: skip
    assert longer["airflow-xcom-after-db-cleanup"][1] == 31 + 3
    assert longer["airflow-task-logs"][1] == 14
    without = rules(policy(rendered([values_file(tmp_path, {"jobs": {"dbCleanup": {"enabled": False}}})]),
                           log_days=30, margin_days=7))  # fmt: skip
    assert set(without) == {"airflow-task-logs"}
    dry = rules(policy(rendered([values_file(tmp_path, {"jobs": {"dbCleanup": {"dryRun": True}}})]),
                       log_days=30, margin_days=7))  # fmt: skip
    assert set(dry) == {"airflow-task-logs"}  # a dry run deletes no row: an old XCom blob may still be live


def test_no_rule_at_all_is_an_error_not_an_empty_policy(tmp_path) -> None:
    off = values_file(tmp_path, {"jobs": {"dbCleanup": {"enabled": False}}, "logs": {"remote": {"enabled": False}}})
    done = run("--values", str(off))
    assert done.returncode == 1
    assert "No rule" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--values", "missing.yaml"], "--values missing.yaml: no such file"), (["--log-days", "0"], ">= 1")],
)
def test_bad_arguments_say_what_to_fix(args, message) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
