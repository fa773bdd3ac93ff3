"""auth.manager: SimpleAuthManager by default, FAB with OpenID Connect sign-in for production (include/fab_auth.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from include import fab_auth
from scripts.paths import ROOT
from tests.support.helm import Manifest, all_containers, env_of, render

FAB = {"auth.manager": "fab"}
ENTRA = {
    **FAB,
    "auth.oidc.enabled": True,
    "auth.oidc.clientId": "11111111-2222-3333-4444-555555555555",
    "auth.oidc.clientSecret.existingSecret": "entra-client",
    "auth.oidc.tenantId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "auth.oidc.rolesMapping": {"group-admins": ["Admin"], "group-readers": ["Viewer"]},
}
ENDPOINTS = {
    "issuer": "http://localhost:9998/",
    "authorizeUrl": "http://localhost:9998/auth",
    "tokenUrl": "http://10.200.0.1:9998/oauth/token",
    "jwksUrl": "http://10.200.0.1:9998/keys",
}


def image_path(path: str) -> Path:
    """The repository file the image puts at ``path`` (the Dockerfile copies include/ to /opt/airflow/include/)."""
    assert path.startswith("/opt/airflow/include/"), path
    return ROOT / path.removeprefix("/opt/airflow/")


def secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    """name -> (Secret, key) of a container's variables taken from Secrets."""
    return {
        name: (value["secretKeyRef"]["name"], value["secretKeyRef"]["key"])
        for name, value in env_of(container).items()
        if isinstance(value, dict) and "secretKeyRef" in value
    }


def api_server_spec(manifest: Manifest) -> dict:
    return manifest.get("Deployment", "api-server")["spec"]["template"]["spec"]


def migrate_container(manifest: Manifest) -> dict:
    [job] = [j for j in manifest.of_kind("Job") if "-db-migrate-" in j["metadata"]["name"]]
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_default_is_the_simple_auth_manager_with_its_passwords_file(defaults: Manifest) -> None:
    cfg = defaults.airflow_config()
    assert (
        cfg["core"]["auth_manager"] == "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    assert cfg["core"]["simple_auth_manager_passwords_file"] == "/opt/airflow/auth/passwords.json"
    assert not cfg.has_section("fab")
    assert not cfg.has_section("oidc")
    assert [c["name"] for c in api_server_spec(defaults)["initContainers"]][-1] == "copy-passwords"


def test_fab_reads_the_images_settings_file_and_keeps_none_of_the_simple_managers_parts() -> None:
    manifest = render(FAB)
    cfg = manifest.airflow_config()
    assert cfg["core"]["auth_manager"] == fab_auth.FAB_AUTH_MANAGER
    settings_file = image_path(cfg["fab"]["config_file"])
    assert settings_file == ROOT / "include" / "webserver_config.py"
    assert settings_file.is_file()  # FAB ignores a missing file without a word
    assert cfg["oidc"]["enabled"] == "False"
    assert not {key for key in cfg["core"] if key.startswith("simple_auth_manager")}
    spec = api_server_spec(manifest)
    assert "copy-passwords" not in [c["name"] for c in spec["initContainers"]]
    assert not {v["name"] for v in spec["volumes"]} & {"auth", "auth-secret"}


def test_fab_generates_one_password_for_the_admin_the_migrate_job_creates_once() -> None:
    manifest = render({**FAB, "auth.admin.username": "platform", "auth.admin.email": "platform@example.org"})
    passwords = json.loads(base64.b64decode(manifest.get("Secret", "auth")["data"]["passwords.json"]))
    assert list(passwords) == ["platform"]
    migrate = migrate_container(manifest)
    script, _, *args = migrate["args"][2:]
    assert script == 'python -m include.db_migrate migrate && exec python -m include.fab_auth create-admin "$@"'
    assert args == ["--username", "platform", "--email", "platform@example.org"]
    assert migrate["args"][:2] == ["bash", "-c"]
    auth_secret = manifest.get("Secret", "auth")["metadata"]["name"]
    assert secret_refs(migrate)[fab_auth.ADMIN_PASSWORDS_ENV] == (auth_secret, "passwords.json")


def test_the_admin_password_reaches_no_other_container() -> None:
    manifest = render(ENTRA)
    holders = [
        f"{name}/{container['name']}"
        for name, spec in manifest.pod_specs()
        for container in all_containers(spec)
        if fab_auth.ADMIN_PASSWORDS_ENV in env_of(container)
    ]
    assert len(holders) == 1
    assert holders[0].endswith("/db-migrate")


def test_the_oidc_client_secret_reaches_the_api_server_and_the_migrate_job_alone() -> None:
    manifest = render(ENTRA)
    holders = sorted(
        f"{name.split('/')[0]}/{container['name']}"
        for name, spec in manifest.pod_specs()
        for container in all_containers(spec)
        if "AIRFLOW__OIDC__CLIENT_SECRET" in env_of(container)
    )
    assert holders == ["Deployment/api-server", "Job/db-migrate"]
    assert secret_refs(migrate_container(manifest))["AIRFLOW__OIDC__CLIENT_SECRET"] == ("entra-client", "client-secret")


def test_entra_id_is_a_tenant_id_and_the_rendered_section_is_what_include_fab_auth_reads() -> None:
    cfg = render(ENTRA).airflow_config()
    cfg["oidc"]["client_secret"] = "from-the-secret"  # AIRFLOW__OIDC__CLIENT_SECRET in the pods
    settings = fab_auth.settings_from_conf(cfg)
    assert settings.metadata_url == (
        "https://login.microsoftonline.com/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/v2.0/.well-known/openid-configuration"
    )
    assert (settings.name, settings.client_id, settings.client_secret) == (
        "entra",
        "11111111-2222-3333-4444-555555555555",
        "from-the-secret",
    )
    assert settings.roles_mapping == {"group-admins": ["Admin"], "group-readers": ["Viewer"]}
    assert (settings.username_claim, settings.roles_claim, settings.registration_role) == (
        "preferred_username",
        "groups",
        "Public",
    )
    app = fab_auth.remote_app(settings)
    assert app["server_metadata_url"] == settings.metadata_url
    assert app["client_kwargs"] == {"scope": "openid email profile"}


def test_endpoints_replace_the_metadata_document() -> None:
    values = {**ENTRA, "auth.oidc.tenantId": "", "auth.oidc.endpoints": ENDPOINTS}
    cfg = render(values).airflow_config()
    assert not cfg.has_option("oidc", "metadata_url")
    cfg["oidc"]["client_secret"] = "s"
    app = fab_auth.remote_app(fab_auth.settings_from_conf(cfg))
    assert "server_metadata_url" not in app
    assert (app["issuer"], app["authorize_url"], app["access_token_url"], app["jwks_uri"]) == tuple(ENDPOINTS.values())
