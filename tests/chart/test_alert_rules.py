"""metrics.prometheusRule: the chart's alerts, run through promtool's rule unit tests (Prometheus' own engine on
synthetic series, built by scripts/bootstrap prometheus): each alert fires on the story it is for and stays quiet on
the healthy one. tests/cluster/test_metrics.py loads the same rules into a Prometheus scraping the release.

Series carry the labels the rules select on by default (a ServiceMonitor's job and namespace); time starts at 0.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.paths import PROMETHEUS
from tests.support.helm import FULLNAME, NAMESPACE, Manifest, render

PROMTOOL = PROMETHEUS.parent / "promtool"
METRICS = {"metrics.enabled": True, "metrics.prometheusRule": "always"}
SELECTOR = f'job="{FULLNAME}-statsd-exporter",namespace="{NAMESPACE}"'
RELEASE_LABELS = {"job": f"{FULLNAME}-statsd-exporter", "namespace": NAMESPACE}  # what absent() keeps


def rules(manifest: Manifest) -> dict[str, dict[str, Any]]:
    [rule] = manifest.of_kind("PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ",".join([SELECTOR, *(f'{key}="{value}"' for key, value in labels.items())])
    return {"series": f"{name}{{{matchers}}}", "values": values}


def promtool_test(tmp_path: Path, manifest: Manifest, cases: list[dict[str, Any]]) -> subprocess.CompletedProcess:
    """Run promtool's unit tests ``cases`` against the rendered rule's groups; each expected alert gets its rule's
    severity and annotations."""
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `scripts/bootstrap prometheus`"
    [rule] = manifest.of_kind("PrometheusRule")
    by_name = rules(manifest)
    for case in cases:
        for check in case["alert_rule_test"]:
            alert = by_name[check["alertname"]]
            for expected in check["exp_alerts"]:
                expected["exp_labels"] = {**expected.get("exp_labels", {}), **alert["labels"]}
                expected["exp_annotations"] = alert["annotations"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases})
    )
    return subprocess.run(
        [str(PROMTOOL), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )


def case(input_series: list[dict[str, str]], alertname: str, expected: dict[str, list[dict]], interval: str = "1m"):
    """One promtool test: ``expected`` maps eval times to the alerts expected then (each a dict of extra labels)."""
    return {
        "interval": interval,
        "input_series": input_series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": alertname, "exp_alerts": [{"exp_labels": labels} for labels in alerts]}
            for at, alerts in expected.items()
        ],
    }


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return render(METRICS)


def test_every_alert_fires_on_its_story_and_stays_quiet_when_healthy(manifest: Manifest, tmp_path: Path) -> None:
    heartbeat = "airflow_scheduler_heartbeat"
    cases = [
        # The scheduler beats every few seconds: quiet. It stops at 10m: firing once 5m of no beats held for 5m.
        case([series(heartbeat, "0+5x60")], "AirflowSchedulerHeartbeatMissing", {"50m": []}),
        case(
            [series(heartbeat, "0+5x10 50x50")],
            "AirflowSchedulerHeartbeatMissing",
            {"15m": [], "25m": [{}]},
        ),
        # No heartbeat series at all (no scheduler ever, or the selector misses): firing after 5m, with the
        # release's labels from absent().
        case([series("up", "1x20")], "AirflowSchedulerHeartbeatMissing", {"3m": [], "10m": [RELEASE_LABELS]}),
        # 1 success a minute, failures from 60m at 1 a minute: about a third of the tries fail, for 10m.
        case(
            [
                series("airflow_ti_finish", "0+1x120", dag_id="d", task_id="t", state="success"),
                series("airflow_ti_finish", "_x60 1+1x60", dag_id="d", task_id="t", state="failed"),
            ],
            "AirflowTaskFailureRatioHigh",
            {"50m": [], "90m": [{}]},
        ),
        # Few runs: 6 successes an hour, then one task's first failures: a new series at 5 (the exporter creates a
        # counter at its first event). increase() alone would read 0 there; the rule counts it.
        case(
            [
                series("airflow_ti_finish", "0+0.1x120", dag_id="d", task_id="t", state="success"),
                series("airflow_ti_finish", "_x80 5x40", dag_id="d", task_id="u", state="failed"),
            ],
            "AirflowTaskFailureRatioHigh",
            {"75m": [], "95m": [{}]},
        ),
        # Busy and healthy: 5 of 100 an hour fail.
        case(
            [
                series("airflow_ti_finish", "0+1.6x120", dag_id="d", task_id="t", state="success"),
                series("airflow_ti_finish", "0+0.08x120", dag_id="d", task_id="t", state="failed"),
            ],
            "AirflowTaskFailureRatioHigh",
            {"100m": []},
        ),
        # 3 tasks queued the whole time and no task starting: firing from 15m; tasks starting: quiet.
        case(
            [series("airflow_pool_queued_slots", "3x40", pool_name="default_pool"), series("airflow_ti_start", "7x40")],
            "AirflowTasksQueuedNotStarting",
            {"10m": [], "20m": [{}]},
        ),
        case(
            [
                series("airflow_pool_queued_slots", "3x40", pool_name="default_pool"),
                series("airflow_ti_start", "0+2x40", dag_id="d", task_id="t"),
            ],
            "AirflowTasksQueuedNotStarting",
            {"30m": []},
        ),
        # The first integrity failure ever (a new series at 1): firing at once, quiet again 30m later.
        case(
            [series("airflow_azblob_xcom_errors", "_x10 1x50", direction="pull", error="integrity")],
            "AirflowXComIntegrityFailures",
            {"5m": [], "11m": [{}], "45m": []},
        ),
        # Other errors are not integrity failures.
        case(
            [series("airflow_azblob_xcom_errors", "_x10 1+1x50", direction="pull", error="not_found")],
            "AirflowXComIntegrityFailures",
            {"20m": []},
        ),
        # Cleanup succeeded at 1h and never again (the exporter keeps the gauge): firing past 48h (+30m).
        case(
            [series(heartbeat, "0+60x700"), series("airflow_db_cleanup_last_success", "3600x700")],
            "AirflowDbCleanupNotSucceeding",
            {"30h": [], "50h": [{}]},
            interval="10m",
        ),
        # Never succeeded: quiet while the release is younger than 48h, firing after, with absent()'s labels.
        case(
            [series(heartbeat, "0+60x700")],
            "AirflowDbCleanupNotSucceeding",
            {"40h": [], "51h": [RELEASE_LABELS]},
            interval="10m",
        ),
        # Daily successes: quiet.
        case(
            [series(heartbeat, "0+60x700"), series("airflow_db_cleanup_last_success", "0+600x700")],
            "AirflowDbCleanupNotSucceeding",
            {"100h": []},
            interval="10m",
        ),
    ]
    done = promtool_test(tmp_path, manifest, cases)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_quiet_story_fails_when_the_alert_would_fire(manifest: Manifest, tmp_path: Path) -> None:
    """promtool itself: an alert expected quiet that fires fails the run (so the cases above can fail)."""
    stopped = case(
        [series("airflow_scheduler_heartbeat", "0+5x10 50x50")], "AirflowSchedulerHeartbeatMissing", {"25m": []}
    )
    done = promtool_test(tmp_path, manifest, [stopped])
    assert done.returncode != 0
    assert "AirflowSchedulerHeartbeatMissing" in done.stdout + done.stderr


def test_the_rules_are_valid_for_prometheus(manifest: Manifest, tmp_path: Path) -> None:
    [rule] = manifest.of_kind("PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = [str(PROMTOOL), "check", "rules", "rules.yaml"]
    done = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout
