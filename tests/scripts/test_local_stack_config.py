"""The local stack's airflow.cfg and the chart's come from one source: they differ only where a machine differs.

Both are rendered by helm from chart/templates/configmaps/airflow-config.yaml; the local stack adds its hosts,
ports and paths. The kind profile (KubernetesExecutor, git-sync) is the deployment the local stack stands in for.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from scripts import chart
from scripts.devstack import stack
from scripts.paths import ROOT

# Every key allowed to differ, and why. Anything else that differs is a second source of truth creeping in.
MAY_DIFFER = {
    ("core", "executor"): "LocalExecutor on one machine, KubernetesExecutor in the cluster",
    ("core", "execution_api_server_url"): "host and port of the api-server",
    ("core", "dags_folder"): "path",
    ("core", "plugins_folder"): "the checkout's include/plugins, which the image bakes under /opt/airflow",
    ("core", "simple_auth_manager_passwords_file"): "path",
    ("logging", "base_log_folder"): "path",
    (
        "logging",
        "delete_local_logs",
    ): "follows the executor: tasks share one log folder here, each pod has its own there",
    ("dag_processor", "dag_bundle_config_list"): "DAG delivery: GitDagBundle from a local repo instead of git-sync",
    ("dag_processor", "dag_bundle_storage_path"): "path",
}
KUBERNETES_ONLY = "kubernetes_executor"


def as_dict(cfg) -> dict[tuple[str, str], str]:
    return {(section, key): value for section in cfg.sections() for key, value in cfg.items(section)}


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict[tuple[str, str], str]:
    settings = stack.Settings(state_dir=tmp_path_factory.mktemp("state"), api_port=18080, azurite_port=11000)
    return as_dict(stack.local_config(settings))


@pytest.fixture(scope="module")
def kind() -> dict[tuple[str, str], str]:
    return as_dict(stack.render_chart_config([ROOT / "config" / "profiles" / "kind.yaml"], {}))


def test_local_and_chart_configs_agree_on_every_key_but_hosts_ports_paths_and_executor(local, kind):
    differing = {
        key for key in local.keys() | kind.keys() if local.get(key) != kind.get(key) and key[0] != KUBERNETES_ONLY
    }
    assert differing <= MAY_DIFFER.keys(), {
        key: (local.get(key), kind.get(key)) for key in differing - MAY_DIFFER.keys()
    }


def test_the_shared_keys_that_matter_most_are_present_and_equal(local, kind):
    for key in [
        ("core", "xcom_backend"),
        ("azblob_xcom", "conn_id"),
        ("azblob_xcom", "container"),
        ("azblob_xcom", "threshold"),
        ("logging", "remote_logging"),
        ("logging", "remote_base_log_folder"),
        ("logging", "remote_log_conn_id"),
        ("azure_remote_logging", "remote_wasb_log_container"),
        ("core", "simple_auth_manager_users"),
    ]:
        assert key in local, key
        assert local[key] == kind[key], key


def test_local_hosts_and_paths_point_at_this_machine(local):
    assert local[("core", "executor")] == "LocalExecutor"
    assert local[("core", "execution_api_server_url")] == "http://127.0.0.1:18080/execution/"
    (bundle,) = json.loads(local[("dag_processor", "dag_bundle_config_list")])
    assert bundle["kwargs"]["repo_url"].startswith("file:///")
    assert bundle["kwargs"]["subdir"] == "dags"
    for key in [k for k, why in MAY_DIFFER.items() if why == "path"]:
        assert Path(local[key]).is_absolute()
        assert "/opt/airflow" not in local[key], key


def test_project_paths_are_the_images_paths_under_the_checkout(local, kind):
    """/opt/airflow (the image's PYTHONPATH) is the checkout here: the same files, loaded from where they are."""
    for key, relative in stack.PROJECT_KEYS.items():
        assert kind[key] == f"/opt/airflow/{relative}", key
        assert local[key] == str(ROOT / relative), key
        assert Path(local[key]).is_dir(), key


def test_the_local_connection_is_the_kind_profiles_but_for_azurites_address(tmp_path):
    """The same extra (client options included) as the pods get; only the Blob endpoint is this machine's."""
    settings = stack.Settings(state_dir=tmp_path, api_port=18080, azurite_port=11000)
    local = json.loads(stack.local_connection(settings))
    [secret] = chart.template([ROOT / "config" / "profiles" / "kind.yaml"], show_only=stack.CONNECTION_TEMPLATE)
    kind = json.loads(base64.b64decode(secret["data"]["connection"]))
    endpoints = [
        dict(p.split("=", 1) for p in c["extra"].pop("connection_string").rstrip(";").split(";")) for c in (local, kind)
    ]
    assert local == kind
    assert local["extra"], "the kind profile gives the SDK client no options"
    assert endpoints[0].pop("BlobEndpoint") == "http://127.0.0.1:11000/devstoreaccount1"
    assert endpoints[1].pop("BlobEndpoint").endswith(":10000/devstoreaccount1")
    assert endpoints[0] == endpoints[1]


def test_a_chart_render_error_reaches_the_user_as_a_stack_error():
    with pytest.raises(stack.StackError, match=r"helm could not render airflow\.cfg"):
        stack.render_chart_config([ROOT / "config" / "profiles" / "local.yaml"], {"executor": "CeleryExecutor"})


def test_the_local_stack_passes_the_alerts_webhook_url_from_the_shell_and_no_other_airflow_setting(
    tmp_path, monkeypatch
):
    """The chart passes the webhook URL from a Secret; `make up` takes it from the caller's environment, while every
    other AIRFLOW__ variable stays out (the rendered airflow.cfg is the one source)."""
    monkeypatch.setenv(stack.ALERTS_WEBHOOK_ENV, "https://hooks.example.com/services/T0/B0/x")
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "3")
    settings = stack.Settings(state_dir=tmp_path, api_port=18080, azurite_port=11000)
    secret = {"fernet_key": "f", "api_secret_key": "a", "jwt_secret": "j"}
    env = stack.airflow_env(settings, secret, "sqlite://", "wasb_default")
    assert env[stack.ALERTS_WEBHOOK_ENV] == "https://hooks.example.com/services/T0/B0/x"
    assert "AIRFLOW__CORE__PARALLELISM" not in env
