"""Generated secrets (kept, each replaceable by an existing Secret), checksum annotations, RBAC scope."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.fernet import Fernet

from scripts.devstack.stack import ALERTS_WEBHOOK_ENV
from scripts.paths import ROOT
from tests.support.helm import (
    CHART,
    FULLNAME,
    NAMESPACE,
    Manifest,
    all_containers,
    env_of,
    render,
    render_error,
    render_fresh,
)

# Every value the chart would otherwise generate, named instead: what `helm template | kubectl apply` and GitOps
# tools (Argo CD, Flux), which cannot `lookup`, need so that no secret changes on the next sync (docs/chart.md).
NO_GENERATED_VALUES = {
    "secrets.fernetKey.existingSecret": "my-fernet",
    "secrets.apiSecretKey.existingSecret": "my-api",
    "secrets.jwtSecret.existingSecret": "my-jwt",
    "auth.existingSecret": "my-passwords",
    "postgresql.enabled": False,
    "database.existingSecret": "my-db",
}

POD_OPERATOR = {"workers.podOperator.enabled": True, "workers.podOperator.namespace": "airflow-steps"}
GENERATED = ("fernet-key", "api-secret-key", "jwt-secret", "auth", "postgresql")


@pytest.mark.parametrize("name", GENERATED)
def test_generated_secret_is_kept_across_upgrades_and_uninstall(defaults: Manifest, name: str) -> None:
    secret = defaults.get("Secret", name)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_generated_secrets_are_looked_up_before_generating() -> None:
    text = (CHART / "templates" / "_secrets.tpl").read_text()
    assert 'lookup "v1" "Secret" .root.Release.Namespace .name' in text
    generated = (CHART / "templates" / "secrets" / "generated.yaml").read_text()
    assert "keptSecretValue" in generated
    assert 'lookup "v1" "Secret"' in generated  # the passwords file keeps handed-out passwords


def test_generated_fernet_key_is_a_valid_fernet_key(defaults: Manifest) -> None:
    key = base64.b64decode(defaults.get("Secret", "fernet-key")["data"]["fernet-key"])
    Fernet(key)


def test_generated_passwords_file_has_one_password_per_user() -> None:
    manifest = render({"auth.users": ["admin:admin", "ops:op"]})
    passwords = json.loads(base64.b64decode(manifest.get("Secret", "auth")["data"]["passwords.json"]))
    assert set(passwords) == {"admin", "ops"}
    assert all(len(p) >= 16 for p in passwords.values())


def test_existing_secrets_replace_every_generated_one() -> None:
    manifest = render(NO_GENERATED_VALUES)
    assert not [
        s["metadata"]["name"] for s in manifest.of_kind("Secret") if "azure-connection" not in s["metadata"]["name"]
    ]
    spec = manifest.get("Deployment", "api-server")["spec"]["template"]["spec"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in spec["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs["AIRFLOW__CORE__FERNET_KEY"] == "my-fernet"
    assert refs["AIRFLOW__API__SECRET_KEY"] == "my-api"
    assert refs["AIRFLOW__API_AUTH__JWT_SECRET"] == "my-jwt"
    assert refs["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "my-db"
    assert next(v for v in spec["volumes"] if v["name"] == "auth-secret")["secret"]["secretName"] == "my-passwords"


def test_postgresql_password_and_metadata_url_come_from_one_secret(defaults: Manifest) -> None:
    data = defaults.get("Secret", "postgresql")["data"]
    password = base64.b64decode(data["password"]).decode()
    url = base64.b64decode(data["connection"]).decode()
    assert url == f"postgresql://airflow:{password}@{FULLNAME}-postgresql:5432/airflow"


def test_every_consumer_of_the_airflow_cfg_carries_its_checksum(any_render: Manifest) -> None:
    for where, _spec in any_render.pod_specs():
        if where.startswith("Pod/") or any(other in where for other in ("azurite", "postgresql", "statsd-exporter")):
            continue
        if where.startswith("CronJob/"):  # each run is a new pod: it mounts the ConfigMap as it is then
            continue
        obj_name = where.split("/")[-1]
        if where == "worker pod template":
            annotations = any_render.worker_pod_template()["metadata"]["annotations"]
        else:
            kind = where.split("/")[0]
            annotations = any_render.get(kind, obj_name)["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/airflow-config" in annotations, where


def test_checksums_change_when_the_config_changes() -> None:
    def annotations(manifest: Manifest) -> dict:
        return manifest.get("Deployment", "scheduler")["spec"]["template"]["metadata"]["annotations"]

    before, after = annotations(render()), annotations(render({"xcom.threshold": 1024}))
    assert before["checksum/airflow-config"] != after["checksum/airflow-config"]
    assert before["checksum/pod-template"] != after["checksum/pod-template"]
    assert before["checksum/azure-connection"] == after["checksum/azure-connection"]


def test_scheduler_role_lets_the_executor_manage_worker_pods_in_the_namespace_only(defaults: Manifest) -> None:
    assert not defaults.of_kind("ClusterRole")
    assert not defaults.of_kind("ClusterRoleBinding")
    rules = {r["resources"][0]: set(r["verbs"]) for r in defaults.get("Role", "scheduler")["rules"]}
    assert rules["pods"] == {"create", "list", "get", "patch", "watch", "delete"}
    assert rules["pods/log"] == {"get"}
    assert rules["events"] == {"list", "watch"}
    binding = defaults.get("RoleBinding", "scheduler")
    assert binding["subjects"][0]["name"] == f"{FULLNAME}-scheduler"


def test_api_server_role_reads_pod_logs_only(defaults: Manifest) -> None:
    rules = {r["resources"][0]: set(r["verbs"]) for r in defaults.get("Role", "api-server")["rules"]}
    assert rules == {"pods": {"list", "get"}, "pods/log": {"get"}}


def test_local_executor_renders_no_worker_rbac_or_pod_template() -> None:
    manifest = render({"executor": "LocalExecutor"})
    assert not manifest.of_kind("Role")
    assert not manifest.has("ConfigMap", "pod-template")


def test_the_fast_lane_keeps_the_kubernetes_executors_rbac_and_pod_template() -> None:
    manifest = render({"executor": "KubernetesExecutor,LocalExecutor"})
    assert {role["metadata"]["name"] for role in manifest.of_kind("Role")} == {
        f"{FULLNAME}-scheduler",
        f"{FULLNAME}-api-server",
    }
    assert manifest.has("ConfigMap", "pod-template")
    assert manifest.airflow_config()["kubernetes_executor"]["pod_template_file"]


def test_each_component_runs_under_its_own_service_account(defaults: Manifest) -> None:
    accounts = {
        name: defaults.get("Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"]
        for name in ("api-server", "scheduler", "dag-processor", "triggerer")
    }
    accounts["worker"] = defaults.worker_pod_template()["spec"]["serviceAccountName"]
    assert len(set(accounts.values())) == 5
    for account in accounts.values():
        assert defaults.has("ServiceAccount", account)


def test_network_policies_restrict_database_and_storage_to_airflow_pods() -> None:
    manifest = render({"networkPolicies.enabled": True})
    for name, port in (("postgresql", 5432), ("azurite", 10000)):
        (rule,) = manifest.get("NetworkPolicy", name)["spec"]["ingress"]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        (source,) = rule["from"]
        components = source["podSelector"]["matchExpressions"][1]["values"]
        assert {"scheduler", "api-server", "db-migrate"} <= set(components)
        assert ("worker" in components) == (name == "azurite")  # tasks use Blob storage, never the DB
    assert manifest.get("NetworkPolicy", "worker")["spec"]["ingress"] == []
    assert manifest.get("NetworkPolicy", "api-server")["spec"]["ingress"][0]["ports"][0]["port"] == 8080


@pytest.mark.parametrize(
    ("executor", "serving"),
    [("KubernetesExecutor", {"triggerer": "trigger_log_server_port"}),
     ("LocalExecutor", {"triggerer": "trigger_log_server_port", "scheduler": "worker_log_server_port"}),
     ("KubernetesExecutor,LocalExecutor",
      {"triggerer": "trigger_log_server_port", "scheduler": "worker_log_server_port"})],
)  # fmt: skip
@pytest.mark.parametrize("ports", [{}, {"worker_log_server_port": 9793, "trigger_log_server_port": 9794}])
def test_the_api_server_reaches_every_log_server_on_the_port_airflow_cfg_names(
    executor: str, serving: dict[str, str], ports: dict[str, int]
) -> None:
    """Running tasks' logs: the api-server fetches them from the scheduler (LocalExecutor) and the triggerer."""
    manifest = render({"networkPolicies.enabled": True, "executor": executor, "config": {"logging": ports}})
    from airflow.configuration import AirflowConfigParser  # Airflow's defaults for the ports the chart leaves unset

    cfg = AirflowConfigParser()
    cfg.read_string(manifest.airflow_cfg())
    api_server = manifest.get("Deployment", "api-server")["spec"]["template"]["metadata"]["labels"]
    for component in ("scheduler", "dag-processor", "triggerer"):
        container = manifest.get("Deployment", component)["spec"]["template"]["spec"]["containers"][0]
        ingress = manifest.get("NetworkPolicy", component)["spec"]["ingress"]
        if component not in serving:
            assert (ingress, container.get("ports")) == ([], None), component
            continue
        port = cfg.getint("logging", serving[component])
        assert container["ports"] == [{"name": "logs", "containerPort": port}], component
        (rule,) = ingress
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}], component
        (source,) = rule["from"]
        assert source["podSelector"]["matchLabels"].items() <= api_server.items(), component


def test_network_policy_selectors_match_the_pods_they_protect() -> None:
    manifest = render({"networkPolicies.enabled": True})
    for policy in manifest.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        component = selector["app.kubernetes.io/component"]
        if component == "worker":
            labels = manifest.worker_pod_template()["metadata"]["labels"]
        elif component == "postgresql":
            labels = manifest.get("StatefulSet", "postgresql")["spec"]["template"]["metadata"]["labels"]
        else:
            labels = manifest.get("Deployment", component)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), policy["metadata"]["name"]


def test_containers_declare_no_privileged_or_host_settings(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        assert not spec.get("hostNetwork"), where
        assert not spec.get("hostPID"), where
        for container in all_containers(spec):
            assert not container["securityContext"].get("privileged"), where


def test_without_lookup_the_documented_existing_secrets_make_every_render_identical() -> None:
    assert render_fresh({}) != render_fresh({}), "defaults generate random secrets in every lookup-less render"
    assert render_fresh(NO_GENERATED_VALUES) == render_fresh(NO_GENERATED_VALUES)


def test_the_lookup_less_values_are_the_ones_docs_chart_md_lists() -> None:
    section = (ROOT / "docs" / "chart.md").read_text().split("### Installs without `lookup`", 1)[1].split("\n#", 1)[0]
    for key in NO_GENERATED_VALUES:
        assert f"`{key}`" in section, key


def holders_of(manifest: Manifest, variable: str) -> dict[str, object]:
    """workload -> the value (or valueFrom) of ``variable`` in its containers that set it."""
    return {
        name: env[variable]
        for name, spec in manifest.pod_specs()
        for container in all_containers(spec)
        if variable in (env := env_of(container))
    }


def test_the_alerts_webhook_url_reaches_the_scheduler_and_worker_pods_from_its_secret_and_nothing_else(
    defaults: Manifest,
) -> None:
    assert not holders_of(defaults, ALERTS_WEBHOOK_ENV)
    wired = render({"alerts.webhook.existingSecret": "team-alerts", "alerts.webhook.key": "slack"})
    reference = {"secretKeyRef": {"name": "team-alerts", "key": "slack"}}
    assert holders_of(wired, ALERTS_WEBHOOK_ENV) == {
        f"Deployment/{FULLNAME}-scheduler": reference,
        "worker pod template": reference,
    }
    assert "webhook" not in wired.airflow_cfg()  # the URL never sits in the ConfigMap


def test_alert_settings_render_into_the_alerts_section() -> None:
    cfg = render({"alerts.onRetry": False, "alerts.timeoutSeconds": 2.5}).airflow_cfg()
    assert "[alerts]\non_retry = False\ntimeout = 2.5" in cfg


K8S_CONN_ENV = "AIRFLOW_CONN_KUBERNETES_DEFAULT"


def test_tasks_have_no_kubernetes_rights_until_the_pod_operator_is_enabled(defaults: Manifest) -> None:
    assert not defaults.has("Role", "pod-operator")
    assert not holders_of(defaults, K8S_CONN_ENV)


@pytest.mark.parametrize(
    ("executor", "runners"),
    [("KubernetesExecutor", ["worker"]), ("LocalExecutor", ["scheduler"]),
     ("KubernetesExecutor,LocalExecutor", ["scheduler", "worker"])],
)  # fmt: skip
def test_the_pod_operator_role_goes_to_the_service_accounts_tasks_run_as(executor: str, runners: list[str]) -> None:
    manifest = render({**POD_OPERATOR, "executor": executor})
    rules = {r["resources"][0]: set(r["verbs"]) for r in manifest.get("Role", "pod-operator")["rules"]}
    assert rules == {
        "pods": {"create", "get", "list", "watch", "patch", "delete"},
        "pods/log": {"get"},
        "pods/exec": {"create", "get"},
        "events": {"list", "watch"},
    }
    subjects = manifest.get("RoleBinding", "pod-operator")["subjects"]
    assert [s["name"] for s in subjects] == [f"{FULLNAME}-{runner}" for runner in runners]
    holders = set(holders_of(manifest, K8S_CONN_ENV))
    where = {"worker": "worker pod template", "scheduler": f"Deployment/{FULLNAME}-scheduler"}
    assert holders == {where[runner] for runner in runners}


def test_the_pod_operator_connection_is_in_cluster_in_the_steps_namespace_with_a_restricted_sidecar() -> None:
    manifest = render(POD_OPERATOR)
    (value,) = holders_of(manifest, K8S_CONN_ENV).values()
    connection = json.loads(value)
    assert connection["conn_type"] == "kubernetes"
    extra = connection["extra"]
    base = manifest.worker_pod_template()["spec"]["containers"][0]
    assert (extra["in_cluster"], extra["namespace"]) == (True, "airflow-steps")
    assert extra["xcom_sidecar_container_image"] == base["image"]
    assert json.loads(extra["xcom_sidecar_container_security_context"]) == base["securityContext"]
    own = render({**POD_OPERATOR, "workers.podOperator.xcomSidecarImage": "mirror/alpine:3.22"})
    assert json.loads(next(iter(holders_of(own, K8S_CONN_ENV).values())))["extra"]["xcom_sidecar_container_image"] == (
        "mirror/alpine:3.22"
    )


@pytest.mark.parametrize(
    ("namespace", "said"), [("", 'empty (the release namespace "airflow")'), (NAMESPACE, "the release")]
)
def test_the_pod_operator_refuses_to_run_steps_in_the_release_namespace(namespace: str, said: str) -> None:
    error = render_error({**POD_OPERATOR, "workers.podOperator.namespace": namespace})
    assert f"workers.podOperator.namespace is {said}" in error
    assert "Set workers.podOperator.namespace to a namespace of their own" in error


def test_the_pod_operator_keeps_the_step_pods_out_of_the_release_namespace() -> None:
    """In a namespace of their own, the step pods cannot mount the release's Secrets: the Role is made there and the
    connection points there, while the binding still names the workers' ServiceAccount in the release namespace."""
    manifest = render(POD_OPERATOR)
    role, binding = manifest.get("Role", "pod-operator"), manifest.get("RoleBinding", "pod-operator")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "airflow-steps"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{FULLNAME}-worker", "namespace": NAMESPACE}]
    (value,) = holders_of(manifest, K8S_CONN_ENV).values()
    assert json.loads(value)["extra"]["namespace"] == "airflow-steps"


@pytest.mark.parametrize(
    ("values", "with_token"),
    [
        ({}, {"scheduler", "api-server"}),
        (POD_OPERATOR, {"scheduler", "api-server", "worker pod template"}),
        ({"executor": "LocalExecutor"}, set()),
        ({**POD_OPERATOR, "executor": "LocalExecutor"}, {"scheduler"}),
        (
            {**POD_OPERATOR, "executor": "KubernetesExecutor,LocalExecutor"},
            {"scheduler", "api-server", "worker pod template"},
        ),
    ],
    ids=[
        "KubernetesExecutor",
        "with the pod operator",
        "LocalExecutor",
        "LocalExecutor with the pod operator",
        "fast lane with the pod operator",
    ],
)
def test_only_the_pods_that_call_the_kubernetes_api_get_a_token(values: dict, with_token: set[str]) -> None:
    """The scheduler starts worker pods, the api-server reads their logs, the tasks start step pods with the pod
    operator: every other pod (dag-processor, triggerer, Jobs, CronJob, helm tests, Azurite, PostgreSQL) has none."""
    mounted = {
        name.removeprefix("Deployment/").removeprefix(f"{FULLNAME}-")
        for name, spec in render(values).pod_specs()
        if spec.get("automountServiceAccountToken") is not False
    }
    assert mounted == with_token


def test_everyone_an_admin_renders_only_for_a_development_install_and_the_notes_warn() -> None:
    from tests.support.helm import render_notes

    values = {"config": {"core": {"simple_auth_manager_all_admins": True}}, "auth.development": True}
    assert render(values).airflow_config()["core"]["simple_auth_manager_all_admins"] == "True"
    assert "SECURITY WARNING: auth.development=true" in render_notes(values)
    assert "auth.development" not in render_notes({})
