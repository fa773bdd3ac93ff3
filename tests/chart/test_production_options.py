"""The generic production surface: Ingress and HTTPRoute derived from config.api.base_url, PodDisruptionBudgets and a
soft anti-affinity for components with several pods, the api-server's autoscaler, the extension points of every
component and of the worker pods, extraObjects, and NOTES.txt's URL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import EXTENSIONS, PRODUCTION_SURFACE
from tests.support.helm import Manifest, all_containers, render, render_notes

SUB_PATH = {"config": {"api": {"base_url": "https://airflow.example.com/team-a/"}}}
DEPLOYMENTS = {
    "apiServer": "api-server",
    "scheduler": "scheduler",
    "dagProcessor": "dag-processor",
    "triggerer": "triggerer",
}


def _pod_spec(manifest: Manifest, component: str) -> dict[str, Any]:
    if component == "worker":
        return manifest.worker_pod_template()["spec"]
    return manifest.get("Deployment", component)["spec"]["template"]["spec"]


# ----------------------------------------------------------------------------------------- ingress and route


def test_no_ingress_or_route_by_default() -> None:
    assert not render().of_kind("Ingress")
    assert not render().of_kind("HTTPRoute")


def test_the_ingress_takes_host_and_sub_path_from_base_url() -> None:
    ingress = render({**SUB_PATH, "ingress.enabled": True, "ingress.className": "nginx"}).get("Ingress", "api-server")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "airflow.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/team-a", "Prefix")
    assert path["backend"]["service"] == {"name": "airflow-airflow-azblob-api-server", "port": {"name": "http"}}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert "tls" not in ingress["spec"]


def test_without_base_url_the_ingress_serves_the_root_of_its_host_or_of_every_host() -> None:
    (rule,) = render({"ingress.enabled": True}).get("Ingress", "api-server")["spec"]["rules"]
    assert "host" not in rule
    assert rule["http"]["paths"][0]["path"] == "/"
    (rule,) = render({"ingress.enabled": True, "ingress.host": "af.example.com"}).get("Ingress", "api-server")["spec"][
        "rules"
    ]
    assert rule["host"] == "af.example.com"


def test_an_ingress_host_and_path_that_repeat_base_url_are_accepted() -> None:
    values = {**SUB_PATH, "ingress.enabled": True, "ingress.host": "airflow.example.com", "ingress.path": "/team-a/"}
    (rule,) = render(values).get("Ingress", "api-server")["spec"]["rules"]
    assert rule["http"]["paths"][0]["path"] == "/team-a"


def test_ingress_tls_names_the_secret_and_the_host() -> None:
    values = {**SUB_PATH, "ingress.enabled": True, "ingress.tls.enabled": True, "ingress.tls.secretName": "af-tls"}
    ingress = render(values).get("Ingress", "api-server")
    assert ingress["spec"]["tls"] == [{"secretName": "af-tls", "hosts": ["airflow.example.com"]}]


def test_the_route_attaches_to_its_gateways_at_base_urls_host_and_path() -> None:
    values = {**SUB_PATH, "httpRoute.enabled": True, "httpRoute.parentRefs": [{"name": "gw", "namespace": "infra"}]}
    route = render(values).get("HTTPRoute", "api-server")
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    assert route["spec"]["hostnames"] == ["airflow.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/team-a"}}]
    assert rule["backendRefs"] == [{"name": "airflow-airflow-azblob-api-server", "port": 8080}]


def test_workers_keep_the_in_cluster_execution_api_url_behind_an_ingress() -> None:
    cfg = render(PRODUCTION_SURFACE).airflow_config()
    assert cfg["core"]["execution_api_server_url"] == "http://airflow-airflow-azblob-api-server:8080/team-a/execution/"


def test_notes_print_the_url_a_user_opens() -> None:
    assert "open https://airflow.example.com/team-a/" in render_notes({**SUB_PATH, "ingress.enabled": True})
    notes = render_notes({"ingress.enabled": True, "ingress.host": "af.example.com"})
    assert "open http://af.example.com/" in notes
    assert "open http" not in render_notes().split("port-forward")[0]


# --------------------------------------------------------------------------- replicas, budgets and spreading


def test_one_replica_gets_no_budget_and_no_anti_affinity() -> None:
    manifest = render()
    assert not manifest.of_kind("PodDisruptionBudget")
    for component in DEPLOYMENTS.values():
        assert "affinity" not in _pod_spec(manifest, component)


@pytest.mark.parametrize("block", ["apiServer", "scheduler", "triggerer"])
def test_several_replicas_get_a_budget_and_prefer_a_node_each(block: str) -> None:
    component = DEPLOYMENTS[block]
    manifest = render({f"{block}.replicas": 2})
    budget = manifest.get("PodDisruptionBudget", component)
    selector = manifest.get("Deployment", component)["spec"]["selector"]
    assert budget["spec"] == {"maxUnavailable": 1, "selector": selector}
    (term,) = _pod_spec(manifest, component)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname", "labelSelector": selector}
    assert [b["metadata"]["name"] for b in manifest.of_kind("PodDisruptionBudget")] == [budget["metadata"]["name"]]


def test_a_budget_can_keep_a_minimum_up_or_be_switched_off() -> None:
    budget = render({"scheduler.replicas": 3, "scheduler.podDisruptionBudget.minAvailable": 2}).get(
        "PodDisruptionBudget", "scheduler"
    )
    assert budget["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in budget["spec"]
    assert not render({"scheduler.replicas": 2, "scheduler.podDisruptionBudget.enabled": False}).of_kind(
        "PodDisruptionBudget"
    )


def test_a_users_pod_anti_affinity_replaces_the_default() -> None:
    own = {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname"}]}
    spec = _pod_spec(render({"scheduler.replicas": 2, "scheduler.affinity": {"podAntiAffinity": own}}), "scheduler")
    assert spec["affinity"] == {"podAntiAffinity": own}


def test_the_api_server_autoscaler_owns_the_replica_count_and_keeps_a_budget() -> None:
    manifest = render(
        {"apiServer.autoscaling.enabled": True, "apiServer.autoscaling.targetMemoryUtilizationPercentage": 80}
    )
    hpa = manifest.get("HorizontalPodAutoscaler", "api-server")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "airflow-airflow-azblob-api-server",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    assert "replicas" not in manifest.get("Deployment", "api-server")["spec"]
    assert manifest.has("PodDisruptionBudget", "api-server")
    assert not render().of_kind("HorizontalPodAutoscaler")


# ------------------------------------------------------------------------------------ extension points


@pytest.mark.parametrize("component", [*DEPLOYMENTS.values(), "worker"])
def test_every_component_and_the_worker_pods_take_every_extension_point(component: str) -> None:
    block = {v: k for k, v in DEPLOYMENTS.items()}.get(component, "workers")
    sidecar = {"name": "proxy", "image": "example/proxy:1.0"}
    values = {f"{block}.{key}": value for key, value in EXTENSIONS.items()}
    spec = _pod_spec(render({**values, f"{block}.extraContainers": [sidecar]}), component)
    main = next(c for c in spec["containers"] if c["name"] in (component, "base"))
    assert {"name": "team-config", "configMap": {"name": "airflow-team-config"}} in spec["volumes"]
    assert {"name": "team-config", "mountPath": "/opt/team", "readOnly": True} in main["volumeMounts"]
    assert main["envFrom"] == [{"configMapRef": {"name": "team-env"}}]
    assert spec["initContainers"][-1]["name"] == "prepare"
    assert spec["containers"][-1] == sidecar
    assert spec["topologySpreadConstraints"] == EXTENSIONS["topologySpreadConstraints"]


def test_extra_objects_are_rendered_with_tpl_as_objects_or_strings() -> None:
    manifest = render(
        {
            "extraObjects": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-a"}},
                'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "airflow-azblob.fullname" . }}-b\n',
            ]
        }
    )
    assert manifest.has("ConfigMap", "airflow-a")
    assert manifest.has("ConfigMap", "airflow-airflow-azblob-b")


def test_init_containers_request_what_their_pods_main_container_does() -> None:
    manifest = render({"dags.mode": "gitSync", "dags.gitSync.repo": "https://example.com/d.git"})
    spec = _pod_spec(manifest, "dag-processor")
    main = next(c for c in spec["containers"] if c["name"] == "dag-processor")
    wait = next(c for c in spec["initContainers"] if c["name"] == "wait-for-migrations")
    assert wait["resources"] == main["resources"]
    for container in all_containers(spec):
        if container["name"].startswith("git-sync"):
            assert container["resources"] == {"requests": {"cpu": "10m", "memory": "64Mi"}}


def test_a_base_url_with_a_port_gives_the_ingress_its_host_name_alone() -> None:
    values = {"config": {"api": {"base_url": "http://localhost:31080/airflow/"}}, "ingress.enabled": True}
    (rule,) = render(values).get("Ingress", "api-server")["spec"]["rules"]
    assert (rule["host"], rule["http"]["paths"][0]["path"]) == ("localhost", "/airflow")
    assert "open http://localhost:31080/airflow/" in render_notes(values)


def test_a_replaced_api_server_keeps_serving_while_the_endpoints_forget_it() -> None:
    spec = _pod_spec(render({"apiServer.drainSeconds": 7}), "api-server")
    main = next(c for c in spec["containers"] if c["name"] == "api-server")
    assert main["lifecycle"] == {"preStop": {"sleep": {"seconds": 7}}}
    assert spec.get("terminationGracePeriodSeconds", 30) > 7


def test_a_budget_of_zero_is_a_value_not_a_default() -> None:
    budget = render({"scheduler.replicas": 2, "scheduler.podDisruptionBudget.maxUnavailable": 0}).get(
        "PodDisruptionBudget", "scheduler"
    )
    assert budget["spec"]["maxUnavailable"] == 0
    budget = render({"scheduler.replicas": 2, "scheduler.podDisruptionBudget.minAvailable": 0}).get(
        "PodDisruptionBudget", "scheduler"
    )
    assert (budget["spec"]["minAvailable"], "maxUnavailable" in budget["spec"]) == (0, False)


def test_no_drain_when_drain_seconds_is_zero() -> None:
    main = next(c for c in _pod_spec(render({"apiServer.drainSeconds": 0}), "api-server")["containers"])
    assert "lifecycle" not in main


def test_an_upper_case_base_url_host_gives_the_ingress_its_lower_case_name() -> None:
    values = {"config": {"api": {"base_url": "https://Airflow.Example.com/"}}, "ingress.enabled": True}
    (rule,) = render(values).get("Ingress", "api-server")["spec"]["rules"]
    assert rule["host"] == "airflow.example.com"
