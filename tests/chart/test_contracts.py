"""Contracts between the chart and the rest of the template: one airflow.cfg, one XCom backend, one Azure
connection Secret and one Execution API URL for every Airflow container and worker pod; the JWT secret only where
it is used; the image paths the Dockerfile creates."""

from __future__ import annotations

import json
import re

import pytest

from include.azblob_xcom_backend import XComConfigError, _valid_container
from scripts.paths import ROOT
from tests.image.dockerfile import parse
from tests.support.helm import FULLNAME, Manifest, all_containers, env_of, render

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_pods(manifest: Manifest) -> dict[str, dict]:
    """Pod specs of the four components and of the worker pod template."""
    pods = {c: manifest.get("Deployment", c)["spec"]["template"]["spec"] for c in AIRFLOW_COMPONENTS}
    if manifest.has("ConfigMap", "pod-template"):
        pods["worker"] = manifest.worker_pod_template()["spec"]
    return pods


def main_container(spec: dict) -> dict:
    return spec["containers"][0]


def test_every_component_and_worker_pod_mounts_the_same_airflow_cfg(any_render: Manifest) -> None:
    for name, spec in airflow_pods(any_render).items():
        config_volume = next(v for v in spec["volumes"] if v["name"] == "config")
        assert config_volume["configMap"]["name"] == f"{FULLNAME}-config", name
        container = main_container(spec)
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert env_of(container)["AIRFLOW_CONFIG"] == f"{mount['mountPath']}/airflow.cfg", name


def test_every_component_and_worker_pod_gets_the_azure_connection_from_one_secret(any_render: Manifest) -> None:
    refs = set()
    for name, spec in airflow_pods(any_render).items():
        env = env_of(main_container(spec))
        conn = [key for key in env if key.startswith("AIRFLOW_CONN_WASB")]
        assert conn == ["AIRFLOW_CONN_WASB_DEFAULT"], name
        refs.add(tuple(sorted(env[conn[0]]["secretKeyRef"].items())))
    assert len(refs) == 1, refs


def test_the_azure_connection_never_appears_in_a_configmap(any_render: Manifest) -> None:
    for cm in any_render.of_kind("ConfigMap"):
        text = str(cm.get("data"))
        assert "AccountKey" not in text, cm["metadata"]["name"]
        assert "connection_string" not in text, cm["metadata"]["name"]


def test_every_airflow_container_selects_the_xcom_backend_of_airflow_cfg(any_render: Manifest) -> None:
    backend = any_render.airflow_config()["core"]["xcom_backend"]
    for name, spec in airflow_pods(any_render).items():
        assert env_of(main_container(spec))["AIRFLOW__CORE__XCOM_BACKEND"] == backend, name


def test_xcom_backend_is_the_baked_blob_backend_with_its_options() -> None:
    parser = render().airflow_config()
    assert parser["core"]["xcom_backend"] == "include.azblob_xcom_backend.WasbXComBackend"
    assert dict(parser["azblob_xcom"]) == {
        "compression": "zstd",
        "conn_id": "wasb_default",
        "container": "airflow-xcom",
        "max_concurrency": "4",
        "prefix": "",
        "retries": "3",
        "threshold": "65536",
        "preview_rows": "100",
    }


def test_xcom_values_reach_the_azblob_xcom_section() -> None:
    values = {"xcom.threshold": 1000000, "xcom.compression": "lz4", "xcom.prefix": "prod/xcom", "xcom.retries": 5}
    section = render(values).airflow_config()["azblob_xcom"]
    assert (section["threshold"], section["compression"], section["prefix"], section["retries"]) == (
        "1000000",
        "lz4",
        "prod/xcom",
        "5",
    )


def test_xcom_disabled_falls_back_to_airflows_db_backend() -> None:
    parser = render({"xcom.enabled": False}).airflow_config()
    assert parser["core"]["xcom_backend"] == "airflow.sdk.bases.xcom.BaseXCom"
    assert not parser.has_section("azblob_xcom")


def test_execution_api_url_points_at_the_api_server_service(any_render: Manifest) -> None:
    url = any_render.airflow_config()["core"]["execution_api_server_url"]
    service = any_render.get("Service", "api-server")
    port = service["spec"]["ports"][0]["port"]
    assert url.startswith(f"http://{service['metadata']['name']}:{port}/")
    assert url.endswith("/execution/")


def test_execution_api_url_and_probes_honour_a_base_url_sub_path() -> None:
    manifest = render({"config": {"api": {"base_url": "https://airflow.example.com/team-a/"}}})
    assert (
        manifest.airflow_config()["core"]["execution_api_server_url"]
        == f"http://{FULLNAME}-api-server:8080/team-a/execution/"
    )
    probe = main_container(manifest.get("Deployment", "api-server")["spec"]["template"]["spec"])["readinessProbe"]
    assert probe["httpGet"]["path"] == "/team-a/api/v2/monitor/health"


def test_execution_api_url_follows_an_internal_url_override() -> None:
    manifest = render({"apiServer.internalUrl": "http://127.0.0.1:28080"})
    assert manifest.airflow_config()["core"]["execution_api_server_url"] == "http://127.0.0.1:28080/execution/"


def test_jwt_secret_reaches_only_the_api_server_and_the_scheduler(any_render: Manifest) -> None:
    holders = set()
    for where, spec in any_render.pod_specs():
        for container in all_containers(spec):
            if "AIRFLOW__API_AUTH__JWT_SECRET" in env_of(container):
                holders.add(where.split("/")[-1].removeprefix(f"{FULLNAME}-"))
    assert holders == {"api-server", "scheduler"}


def test_database_credentials_stay_out_of_worker_pods(any_render: Manifest) -> None:
    if any_render.has("ConfigMap", "pod-template"):
        env = env_of(main_container(any_render.worker_pod_template()["spec"]))
        assert not {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API__SECRET_KEY",
        } & set(env)


def test_components_with_db_access_share_the_metadata_connection_secret(any_render: Manifest) -> None:
    refs = {
        str(env_of(main_container(spec))["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        for name, spec in airflow_pods(any_render).items()
        if name != "worker"
    }
    assert len(refs) == 1


def copy_target(source: str, stage: str | None = None) -> str:
    """Where the Dockerfile's final stage copies ``source`` (from the build context, or from ``stage``)."""
    targets = [t for sources, t, flags in parse().copies if source in sources and flags.get("from") == stage]
    assert len(targets) == 1, f"expected one COPY of {source} in the Dockerfile's final stage, found {targets}"
    return targets[0].rstrip("/")


def test_image_paths_match_the_dockerfile(any_render: Manifest) -> None:
    pythonpath = parse().env["PYTHONPATH"]
    include_target = copy_target("include/")
    backend_module = any_render.airflow_config()["core"]["xcom_backend"].rsplit(".", 1)[0]
    if backend_module.startswith("include."):
        assert f"{pythonpath}/{backend_module.split('.')[0]}" == include_target
    for name, spec in airflow_pods(any_render).items():
        env = env_of(main_container(spec))
        assert env["PYTHONPATH"] == pythonpath, name
        assert env["AIRFLOW_HOME"] == "/opt/airflow", name


def test_plugins_folder_is_the_images_copy_of_include_plugins(any_render: Manifest) -> None:
    folder = any_render.airflow_config()["core"]["plugins_folder"]
    assert folder == f"{copy_target('include/')}/plugins" == parse().env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    assert (ROOT / "include" / "plugins" / "task_termination.py").is_file()


def test_every_include_module_the_chart_runs_is_in_include_which_the_image_bakes(any_render: Manifest) -> None:
    """`python -m include.<module>` in a container's args or a *_CMD setting: the module is a file of include/, the
    folder the Dockerfile copies under PYTHONPATH."""
    assert copy_target("include/") == f"{parse().env['PYTHONPATH']}/include"
    run = set()
    for _, spec in any_render.pod_specs():
        for container in all_containers(spec):
            texts = [" ".join(map(str, container.get("args", []) + container.get("command", [])))]
            texts += [str(value) for value in env_of(container).values()]
            run |= {module for text in texts for module in re.findall(r"-m include\.([\w.]+)", text)}
    assert "db_migrate" in run
    for module in run:
        assert (ROOT / "include" / f"{module.replace('.', '/')}.py").is_file(), module


def test_image_mode_reads_the_folder_the_dockerfile_bakes_dags_into() -> None:
    baked = copy_target("/dags/", stage="dags")
    assert render({"dags.mode": "image"}).airflow_config()["core"]["dags_folder"] == baked


def test_airflow_cfg_is_read_by_airflows_own_config_parser(any_render: Manifest, tmp_path) -> None:
    from airflow.configuration import AirflowConfigParser

    parser = AirflowConfigParser()
    parser.read_string(any_render.airflow_cfg())
    executor = parser.get("core", "executor")
    assert executor in ("KubernetesExecutor", "LocalExecutor", "KubernetesExecutor,LocalExecutor")
    assert parser.getboolean("logging", "remote_logging") in (True, False)
    if parser.has_option("azblob_xcom", "threshold"):
        assert parser.getint("azblob_xcom", "threshold") >= 0


def test_airflow_cfg_renders_standalone_for_the_local_stack() -> None:
    values = {"executor": "LocalExecutor", "apiServer.internalUrl": "http://127.0.0.1:28080"}
    values["azurite.blobEndpoint"] = "http://127.0.0.1:10000/devstoreaccount1"
    manifest = render(values, show_only="templates/configmaps/airflow-config.yaml")
    assert [obj["kind"] for obj in manifest.objects] == ["ConfigMap"]
    parser = manifest.airflow_config()
    assert parser["core"]["executor"] == "LocalExecutor"
    assert parser["core"]["execution_api_server_url"] == "http://127.0.0.1:28080/execution/"
    assert not parser.has_section("kubernetes_executor") or "pod_template_file" not in parser["kubernetes_executor"]


@pytest.mark.parametrize(
    "name", ["abc", "airflow-xcom", "a1-b2-c3", "x" * 63, "ab", "x" * 64, "XCom", "a--b", "-ab", "ab-", "a_b", "a.b"]
)
def test_the_schema_accepts_exactly_the_container_names_the_backend_accepts(name: str) -> None:
    """One rule in two places: helm refuses at install what the backend would refuse at the first task."""
    schema = json.loads((ROOT / "chart" / "values.schema.json").read_text())["properties"]
    try:
        _valid_container(name)
        backend_accepts = True
    except XComConfigError:
        backend_accepts = False
    for rule in (
        schema["xcom"]["properties"]["container"],
        schema["logs"]["properties"]["remote"]["properties"]["container"],
    ):
        schema_accepts = bool(re.fullmatch(rule["pattern"], name)) and len(name) <= rule["maxLength"]
        assert schema_accepts == backend_accepts, rule["description"]
