"""metrics.enabled: Airflow's StatsD to one statsd_exporter, served for Prometheus (tests/cluster/test_metrics.py
scrapes it for real)."""

from __future__ import annotations

import json
import re

from scripts.paths import ROOT
from tests.support.helm import FULLNAME, NAMESPACE, Manifest, render

METRICS = {"metrics.enabled": True}


def exporter(manifest: Manifest) -> tuple[dict, dict]:
    deployment = manifest.get("Deployment", "statsd-exporter")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_off_by_default_nothing_is_sent_and_no_exporter_runs(defaults: Manifest) -> None:
    assert defaults.airflow_config()["metrics"]["statsd_on"] == "False"
    assert not defaults.has("Deployment", "statsd-exporter")
    assert not defaults.has("Service", "statsd-exporter")


def test_every_airflow_pod_sends_tagged_statsd_to_the_exporters_service() -> None:
    manifest = render(METRICS)
    metrics = manifest.airflow_config()["metrics"]
    service = manifest.get("Service", "statsd-exporter")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert metrics["statsd_on"] == "True"
    assert metrics["statsd_host"] == service["metadata"]["name"]
    assert (int(metrics["statsd_port"]), ports["statsd"]["protocol"]) == (ports["statsd"]["port"], "UDP")
    assert (metrics["statsd_prefix"], metrics["statsd_influxdb_enabled"], metrics["legacy_names_on"]) == (
        "airflow",
        "True",
        "False",
    )
    _, container = exporter(manifest)
    listen = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--statsd.listen-udp=:{listen['statsd']}" in container["args"]
    assert f"--web.listen-address=:{listen['metrics']}" in container["args"]
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ports["metrics"]["port"]),
        "prometheus.io/path": "/metrics",
    }


def test_the_exporter_runs_restricted_as_nobody_with_no_token() -> None:
    deployment, container = exporter(render(METRICS))
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsNonRoot"]) == (65534, True)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "quay.io/prometheus/statsd-exporter:v0.31.0"


def test_a_service_monitor_where_the_operators_api_is_served_or_on_request() -> None:
    assert not render(METRICS).of_kind("ServiceMonitor")  # auto: `helm template` serves no monitoring API
    manifest = render(
        {**METRICS, "metrics.serviceMonitor": "always", "metrics.serviceMonitorLabels": {"release": "kps"}}
    )
    [monitor] = manifest.of_kind("ServiceMonitor")
    service = manifest.get("Service", "statsd-exporter")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_with_network_policies_task_pods_may_send_and_only_airflow_pods_reach_the_statsd_port() -> None:
    manifest = render({**METRICS, "networkPolicies.enabled": True, "metrics.scrapeFrom": [{"namespaceSelector": {}}]})
    worker = manifest.get("NetworkPolicy", "worker")
    to_exporter = [
        rule
        for rule in worker["spec"]["egress"]
        if any(
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "statsd-exporter"
            for peer in rule.get("to", [])
        )
    ]
    assert [rule["ports"] for rule in to_exporter] == [[{"port": 9125, "protocol": "UDP"}]]
    statsd, scrape = manifest.get("NetworkPolicy", "statsd-exporter")["spec"]["ingress"]
    assert statsd["ports"] == [{"port": 9125, "protocol": "UDP"}]
    assert "statsd-exporter" not in str(statsd["from"])  # Airflow's pods, by component
    assert (scrape["ports"], scrape["from"]) == ([{"port": 9102, "protocol": "TCP"}], [{"namespaceSelector": {}}])


def alert_rules(manifest: Manifest) -> dict[str, dict]:
    [rule] = manifest.of_kind("PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_alert_rules_where_the_operators_api_is_served_or_on_request() -> None:
    assert not render(METRICS).of_kind("PrometheusRule")  # auto: `helm template` serves no monitoring API
    assert not render({**METRICS, "metrics.prometheusRule": "never"}).of_kind("PrometheusRule")
    manifest = render({**METRICS, "metrics.prometheusRule": "always", "metrics.prometheusRuleLabels": {"role": "x"}})
    [rule] = manifest.of_kind("PrometheusRule")
    assert rule["metadata"]["labels"]["role"] == "x"
    assert sorted(alert_rules(manifest)) == [
        "AirflowDbCleanupNotSucceeding",
        "AirflowSchedulerHeartbeatMissing",
        "AirflowTaskFailureRatioHigh",
        "AirflowTasksQueuedNotStarting",
        "AirflowXComIntegrityFailures",
    ]


def test_the_alerts_select_this_releases_series_and_take_their_thresholds_from_values() -> None:
    service = f'job="{FULLNAME}-statsd-exporter",namespace="{NAMESPACE}"'
    rules = alert_rules(render({**METRICS, "metrics.prometheusRule": "always"}))
    for rule in rules.values():
        for name in re.findall(r"\b(airflow_\w+)\{([^}]*)\}", rule["expr"]):
            assert name[1].startswith(service), (rule["alert"], name)
    assert "> 0.25" in rules["AirflowTaskFailureRatioHigh"]["expr"]
    assert "[15m:1m]" in rules["AirflowTasksQueuedNotStarting"]["expr"]
    assert "> 172800" in rules["AirflowDbCleanupNotSucceeding"]["expr"]
    custom = {
        "metrics.alerts.selector": 'cluster="prod",release="etl"',
        "metrics.alerts.taskFailureRatio": 0.5,
        "metrics.alerts.queuedMinutes": 30,
        "metrics.alerts.cleanupMaxAgeHours": 200,
    }
    rules = alert_rules(render({**METRICS, "metrics.prometheusRule": "always", **custom}))
    heartbeat = rules["AirflowSchedulerHeartbeatMissing"]["expr"]
    assert 'airflow_scheduler_heartbeat{cluster="prod",release="etl"}' in heartbeat
    assert "> 0.5" in rules["AirflowTaskFailureRatioHigh"]["expr"]
    assert "[30m:1m]" in rules["AirflowTasksQueuedNotStarting"]["expr"]
    assert "> 720000" in rules["AirflowDbCleanupNotSucceeding"]["expr"]


def test_no_cleanup_alert_without_the_cleanup() -> None:
    rules = alert_rules(render({**METRICS, "metrics.prometheusRule": "always", "jobs.dbCleanup.enabled": False}))
    assert "AirflowDbCleanupNotSucceeding" not in rules
    assert len(rules) == 4


def test_the_dashboard_configmap_carries_the_charts_dashboard_for_the_grafana_sidecar() -> None:
    assert not any("grafana" in cm["metadata"]["name"] for cm in render(METRICS).of_kind("ConfigMap"))
    manifest = render(
        {
            **METRICS,
            "metrics.grafanaDashboard.enabled": True,
            "metrics.grafanaDashboard.annotations": {"grafana_folder": "Airflow"},
        }
    )
    dashboard = manifest.get("ConfigMap", "grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    relabelled = render(
        {
            **METRICS,
            "metrics.grafanaDashboard.enabled": True,
            "metrics.grafanaDashboard.label": "dashboards",
            "metrics.grafanaDashboard.labelValue": "airflow",
        }
    ).get("ConfigMap", "grafana-dashboard")
    assert relabelled["metadata"]["labels"]["dashboards"] == "airflow"
    assert "grafana_dashboard" not in relabelled["metadata"]["labels"]
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Airflow"}
    shipped = json.loads((ROOT / "chart" / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["airflow-azblob.json"]) == shipped
    assert shipped["uid"] == "airflow-azblob"
    assert {variable["name"] for variable in shipped["templating"]["list"]} == {"datasource", "namespace", "job"}
