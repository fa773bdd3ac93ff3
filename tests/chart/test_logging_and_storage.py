"""Remote logging to Blob and the Azure connection: first-class values rendered into the right settings."""

from __future__ import annotations

import base64
import json

import pytest

from tests.chart.conftest import ACCOUNT
from tests.support.helm import FULLNAME, Manifest, render, render_error


def connection(manifest: Manifest) -> dict:
    secret = manifest.get("Secret", "azure-connection")
    return json.loads(base64.b64decode(secret["data"]["connection"]))


def test_remote_logging_writes_wasb_prefix_container_and_connection() -> None:
    parser = render({"logs.remote.prefix": "/team-a/logs/", "logs.remote.container": "my-logs"}).airflow_config()
    assert parser["logging"]["remote_logging"] == "True"
    assert parser["logging"]["remote_base_log_folder"] == "wasb://team-a/logs"
    assert parser["logging"]["remote_log_conn_id"] == "wasb_default"
    assert parser["azure_remote_logging"]["remote_wasb_log_container"] == "my-logs"


def test_remote_logging_can_use_its_own_connection_id() -> None:
    parser = render({"logs.remote.connectionId": "wasb_logs"}).airflow_config()
    assert parser["logging"]["remote_log_conn_id"] == "wasb_logs"


def test_remote_logging_off_renders_no_remote_settings() -> None:
    parser = render({"logs.remote.enabled": False}).airflow_config()
    assert parser["logging"]["remote_logging"] == "False"
    assert "remote_base_log_folder" not in parser["logging"]
    assert not parser.has_section("azure_remote_logging")


@pytest.mark.parametrize(
    ("values", "deleted"),
    [
        ({}, "True"),  # KubernetesExecutor: each worker pod has a log folder of its own
        ({"executor": "LocalExecutor"}, "False"),  # tasks share the scheduler's folder
        ({"executor": "KubernetesExecutor,LocalExecutor"}, "False"),  # the fast lane's tasks too
        ({"logs.remote.enabled": False}, "False"),  # the local copy is the only one
    ],
    ids=["kubernetes-executor", "local-executor", "fast-lane", "no-remote-logs"],
)
def test_local_task_logs_are_deleted_after_upload_only_where_each_pod_has_its_own_folder(values, deleted) -> None:
    assert render(values).airflow_config()["logging"]["delete_local_logs"] == deleted


def test_the_dag_processor_logs_to_its_output_not_to_files_that_grow() -> None:
    assert render().airflow_config()["logging"]["dag_processor_log_target"] == "stdout"


def test_azurite_connection_is_a_connection_string_with_an_explicit_blob_endpoint() -> None:
    conn = connection(render())
    parts = dict(p.split("=", 1) for p in conn["extra"]["connection_string"].rstrip(";").split(";"))
    assert conn["conn_type"] == "wasb"
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["BlobEndpoint"] == f"http://{FULLNAME}-azurite:10000/devstoreaccount1"


def test_azurite_connection_string_works_with_wasbhook(monkeypatch) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(connection(render())))
    client = WasbHook(wasb_conn_id="wasb_default").get_conn()
    assert client.url.startswith(f"http://{FULLNAME}-azurite:10000/devstoreaccount1")


def test_account_url_connection_uses_default_azure_credential_with_wasbhook(monkeypatch) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    conn = connection(
        render({"azurite.enabled": False, "azure.connection.accountUrl": "https://acct.blob.core.windows.net"})
    )
    assert conn == {"conn_type": "wasb", "host": "https://acct.blob.core.windows.net"}
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(conn))
    client = WasbHook(wasb_conn_id="wasb_default").get_conn()
    assert client.url.startswith("https://acct.blob.core.windows.net")
    assert type(client.credential).__name__ == "DefaultAzureCredential"


@pytest.mark.parametrize("storage", ["azurite", "account"])
def test_client_options_ride_in_the_connections_extra_where_wasbhook_hands_them_to_the_sdk(storage, monkeypatch):
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    options = {"initial_backoff": 1, "increment_base": 2, "retry_total": 5, "read_timeout": 30}
    values = {"azure.connection.clientOptions": options, **({} if storage == "azurite" else ACCOUNT)}
    conn = connection(render(values))
    assert {key: conn["extra"][key] for key in options} == options
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(conn))
    policy = WasbHook(wasb_conn_id="wasb_default").get_conn()._config.retry_policy
    assert (policy.initial_backoff, policy.increment_base, policy.total_retries) == (1, 2, 5)


def test_client_options_for_a_connection_the_chart_does_not_write_are_refused_naming_where_they_go() -> None:
    values = {"azurite.enabled": False, "azure.connection.existingSecret": "my-storage"}
    error = render_error({**values, "azure.connection.clientOptions": {"initial_backoff": 1}})
    assert "put the options in that connection's extra" in error
    assert "/azure/connection/clientOptions" in render_error({"azure.connection.clientOptions": {"retries": 1}})


def test_connection_id_names_the_environment_variable_and_backend_option() -> None:
    manifest = render({"azure.connection.id": "blob_prod"})
    env = manifest.get("Deployment", "scheduler")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "AIRFLOW_CONN_BLOB_PROD" in {e["name"] for e in env}
    assert manifest.airflow_config()["azblob_xcom"]["conn_id"] == "blob_prod"
    assert manifest.airflow_config()["logging"]["remote_log_conn_id"] == "blob_prod"


def test_existing_connection_secret_is_used_and_none_is_created() -> None:
    manifest = render({"azurite.enabled": False, "azure.connection.existingSecret": "my-storage"})
    assert not manifest.has("Secret", "azure-connection")
    env = manifest.get("Deployment", "triggerer")["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = next(e for e in env if e["name"] == "AIRFLOW_CONN_WASB_DEFAULT")["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-storage", "key": "connection"}


def test_workload_identity_labels_airflow_pods_and_annotates_service_accounts(aks: Manifest) -> None:
    for sa in aks.of_kind("ServiceAccount"):
        assert "azure.workload.identity/client-id" in sa["metadata"]["annotations"], sa["metadata"]["name"]
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        labels = aks.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels["azure.workload.identity/use"] == "true", name
    assert aks.worker_pod_template()["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def test_azurite_runs_with_the_flags_the_azure_sdk_needs() -> None:
    container = render().get("Deployment", "azurite")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("mcr.microsoft.com/azure-storage/azurite:3.")
    for flag in ("--skipApiVersionCheck", "--disableTelemetry", "--loose", "--blobHost=0.0.0.0"):
        assert flag in container["args"]


def test_create_containers_job_creates_the_log_and_xcom_containers() -> None:
    job = render().get("Job", "create-containers-1")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BLOB_CONTAINERS"] == "airflow-logs,airflow-xcom"
    assert env["BLOB_CONN_ID"] == "wasb_default"
