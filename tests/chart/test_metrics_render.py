"""metrics.enabled: Airflow's StatsD to one statsd_exporter, served for Prometheus (tests/cluster/test_metrics.py
scrapes it for real)."""

from __future__ import annotations

from tests.support.helm import Manifest, render

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
    assert not render({"metrics.serviceMonitor": "always"}).of_kind("ServiceMonitor")  # metrics off


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
