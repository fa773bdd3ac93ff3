"""The task pods' egress fence and the DB's ingress: what networkPolicies.enabled renders."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from tests.chart.conftest import ACCOUNT
from tests.support.helm import FULLNAME, Manifest, render, render_error

POLICIES = {"networkPolicies.enabled": True}
POD_OPERATOR = {"workers.podOperator.enabled": True, "workers.podOperator.namespace": "airflow-steps"}
METADATA_ENDPOINT = ip_address("169.254.169.254")


def task_egress(manifest: Manifest) -> list[dict[str, Any]]:
    policy = manifest.get("NetworkPolicy", "worker")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    return policy["egress"]


def reaches(rules: list[dict[str, Any]], address: str, port: int) -> bool:
    """Whether an ipBlock of ``rules`` admits ``address`` on TCP ``port`` (rules without ports admit every port)."""
    for rule in rules:
        if rule.get("ports") and not any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"]):
            continue
        for peer in rule.get("to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]:  # no `to`: every address
            block = peer.get("ipBlock") or {"cidr": "0.0.0.0/32"}
            excepted = any(ip_address(address) in ip_network(cidr) for cidr in block.get("except", []))
            if ip_address(address) in ip_network(block["cidr"]) and not excepted:
                return True
    return False


def ports_of(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


@pytest.mark.parametrize("azurite", [True, False])
def test_task_pods_reach_dns_the_execution_api_and_storage_and_not_the_db(azurite: bool) -> None:
    egress = task_egress(render({**POLICIES, **({} if azurite else ACCOUNT)}))
    dns, execution_api, storage = egress
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert "to" not in dns  # any resolver: kube-dns pods, NodeLocal DNSCache, one on the node
    assert execution_api["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
    assert execution_api["ports"] == [{"port": 8080, "protocol": "TCP"}]
    if azurite:
        assert storage["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "azurite"
        assert storage["ports"] == [{"port": 10000, "protocol": "TCP"}]
    else:
        assert storage["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert 5432 not in ports_of(egress), "a task pod must not reach PostgreSQL"
    assert not reaches(egress, str(METADATA_ENDPOINT), 443)
    assert not reaches(egress, str(METADATA_ENDPOINT), 80)


@pytest.mark.parametrize(
    ("repo", "port"),
    [
        ("git://dags-git:9418/dags.git", 9418),
        ("git://dags-git/dags.git", 9418),
        ("https://github.com/org/dags.git", 443),
        ("http://dags-git-http:8080/dags.git", 8080),
        ("git@github.com:org/dags.git", 22),
        ("ssh://git@git.example.com:2222/org/dags.git", 2222),
    ],
)
@pytest.mark.parametrize("mode", ["gitSync", "gitBundle"])
def test_task_pods_reach_the_git_host_on_the_port_of_the_repository_url(mode: str, repo: str, port: int) -> None:
    """git-sync's init container clones in the task pod, and so does GitDagBundle (found on the local cluster, which
    enforces the policies: without the rule a gitBundle task failed in its clone)."""
    key = {"gitSync": "dags.gitSync.repo", "gitBundle": "dags.gitBundle.repoUrl"}[mode]
    egress = task_egress(render({**POLICIES, "dags.mode": mode, key: repo}))
    anywhere_but_metadata = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]
    (git,) = [rule for rule in egress if rule.get("to") == anywhere_but_metadata]
    assert git["ports"] == [{"port": port, "protocol": "TCP"}]
    assert not reaches(egress, str(METADATA_ENDPOINT), port)


def test_with_dags_in_the_image_task_pods_get_no_git_rule() -> None:
    assert ports_of(task_egress(render(POLICIES))) == {53, 8080, 10000}


def test_the_pod_operator_opens_the_kubernetes_api_it_is_given_and_only_then() -> None:
    assert not reaches(task_egress(render(POLICIES)), "10.1.0.4", 443)
    api = [{"cidr": "10.1.0.4/32", "port": 443}]
    egress = task_egress(render({**POLICIES, **POD_OPERATOR, "networkPolicies.workerEgress.kubernetesApi": api}))
    assert egress[-1] == {"to": [{"ipBlock": {"cidr": "10.1.0.4/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    assert reaches(egress, "10.1.0.4", 443)
    assert not reaches(egress, "10.1.0.5", 443)


def test_the_pod_operator_without_a_reachable_api_address_fails_naming_the_value() -> None:
    """helm template cannot look the kubernetes EndpointSlice up: silence would leave the steps unable to start."""
    error = render_error({**POLICIES, **POD_OPERATOR})
    assert "networkPolicies.workerEgress.kubernetesApi" in error
    assert "kubectl get endpointslice kubernetes -n default" in error


def test_extra_rules_and_narrowed_peers_are_the_users() -> None:
    extra = [{"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}]
    private_endpoint = [{"ipBlock": {"cidr": "10.20.0.5/32"}}]
    kube_dns = [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    egress = task_egress(
        render({
            **POLICIES, **ACCOUNT, "networkPolicies.workerEgress.storage": private_endpoint,
            "networkPolicies.workerEgress.extra": extra, "networkPolicies.workerEgress.dns": kube_dns,
        })
    )  # fmt: skip
    assert egress[0]["to"] == kube_dns
    assert egress[2]["to"] == private_endpoint
    assert egress[-1] == extra[0]
    assert not reaches(egress, "10.20.0.6", 443)


def test_the_db_admits_only_the_components_that_hold_its_url() -> None:
    manifest = render(POLICIES)
    (rule,) = manifest.get("NetworkPolicy", "postgresql")["spec"]["ingress"]
    selector = rule["from"][0]["podSelector"]["matchExpressions"]
    components = next(e["values"] for e in selector if e["key"] == "app.kubernetes.io/component")
    assert set(components) == {"api-server", "scheduler", "dag-processor", "triggerer", "db-migrate", "db-cleanup"}


def test_with_the_fast_lane_the_worker_pods_egress_is_fenced_and_the_schedulers_is_not() -> None:
    """The fast lane's tasks run in the scheduler, which needs the DB; the worker pods' tasks keep their fence."""
    manifest = render({**POLICIES, "executor": "KubernetesExecutor,LocalExecutor"})
    fenced = {p["metadata"]["name"] for p in manifest.of_kind("NetworkPolicy") if "Egress" in p["spec"]["policyTypes"]}
    assert fenced == {f"{FULLNAME}-worker"}


def test_with_the_local_executor_nothing_fences_egress() -> None:
    """Tasks then run in the scheduler, which needs the DB: no pod of the release gets an egress policy."""
    manifest = render({**POLICIES, "executor": "LocalExecutor"})
    assert all(policy["spec"]["policyTypes"] == ["Ingress"] for policy in manifest.of_kind("NetworkPolicy"))


@pytest.mark.parametrize(
    "values",
    [
        {"networkPolicies.workerEgress.kubernetesApi": [{"cidr": "apiserver", "port": 443}]},
        {"networkPolicies.workerEgress.kubernetesApi": [{"cidr": "10.1.0.4/32"}]},
        {"networkPolicies.workerEgress.dns": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]},
        {"networkPolicies.workerEgress.git": [{"serviceSelector": {}}]},
    ],
)
def test_malformed_egress_values_are_refused_by_the_schema(values: dict[str, Any]) -> None:
    error = render_error({**POLICIES, **values})
    assert "/networkPolicies/workerEgress/" in error
