"""include/fab_auth.py: [oidc] of airflow.cfg into FAB's settings, users and roles from claims, the admin's password.

The sign-in itself runs against a real provider on the cluster (tests/cluster/test_sign_in_with_oidc.py); here, what
each setting becomes and every refusal's message.
"""

from __future__ import annotations

import configparser
import json

import pytest
from flask_appbuilder.const import AUTH_DB, AUTH_OAUTH

from include import fab_auth
from include.fab_auth import OidcConfigError, OidcSettings

ENTRA_METADATA = "https://login.microsoftonline.com/tenant/v2.0/.well-known/openid-configuration"


def conf(**oidc: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser["oidc"] = {"enabled": "True", "client_id": "app", "client_secret": "s3cret", **oidc}
    return parser


def test_without_oidc_fab_signs_in_its_own_users_by_password() -> None:
    parser = configparser.ConfigParser()
    assert fab_auth.webserver_settings(parser) == {"AUTH_TYPE": AUTH_DB}
    assert fab_auth.webserver_settings(conf(enabled="False")) == {"AUTH_TYPE": AUTH_DB}


def test_oidc_settings_become_one_fab_provider_with_roles_synced_at_every_sign_in() -> None:
    mapping = {"g-admins": ["Admin"], "g-ops": ["Op", "User"]}
    settings = fab_auth.webserver_settings(
        conf(name="entra", metadata_url=ENTRA_METADATA, roles_mapping=json.dumps(mapping), registration_role="Viewer")
    )
    assert settings["AUTH_TYPE"] == AUTH_OAUTH
    [provider] = settings["OAUTH_PROVIDERS"]
    assert provider["name"] == "entra"
    assert provider["remote_app"] == {
        "client_id": "app",
        "client_secret": "s3cret",
        "client_kwargs": {"scope": "openid email profile"},
        "server_metadata_url": ENTRA_METADATA,
    }
    assert settings["AUTH_ROLES_MAPPING"] == mapping
    assert settings["AUTH_ROLES_SYNC_AT_LOGIN"] is True
    assert (settings["AUTH_USER_REGISTRATION"], settings["AUTH_USER_REGISTRATION_ROLE"]) == (True, "Viewer")
    from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride

    assert issubclass(settings["SECURITY_MANAGER_CLASS"], FabAirflowSecurityManagerOverride)


def test_endpoints_go_to_authlib_under_its_own_names() -> None:
    settings = fab_auth.settings_from_conf(
        conf(
            issuer="https://idp/",
            authorize_url="https://idp/a",
            token_url="http://idp.svc/t",
            jwks_url="http://k",
            userinfo_url="http://u",
        )
    )
    app = fab_auth.remote_app(settings)
    assert {k: app[k] for k in ("issuer", "authorize_url", "access_token_url", "jwks_uri", "userinfo_endpoint")} == {
        "issuer": "https://idp/",
        "authorize_url": "https://idp/a",
        "access_token_url": "http://idp.svc/t",
        "jwks_uri": "http://k",
        "userinfo_endpoint": "http://u",
    }
    assert "server_metadata_url" not in app


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        (
            {"client_secret": ""},
            "[oidc] client_secret not set: the chart takes them from auth.oidc.clientId and the Secret",
        ),
        ({"client_id": ""}, "[oidc] client_id not set"),
        ({"issuer": "https://idp/"}, "[oidc] has no metadata_url and no authorize_url, token_url, jwks_url: set"),
        ({"metadata_url": ENTRA_METADATA, "roles_mapping": "{admins: Admin}"}, "[oidc] roles_mapping is not JSON"),
        (
            {"metadata_url": ENTRA_METADATA, "roles_mapping": '{"admins": "Admin"}'},
            "[oidc] roles_mapping must map claim values to lists of roles",
        ),
    ],
    ids=["no-secret", "no-client", "no-endpoints", "mapping-not-json", "mapping-not-lists"],
)
def test_a_section_that_cannot_sign_anyone_in_is_refused_naming_the_key(oidc: dict, message: str) -> None:
    with pytest.raises(OidcConfigError) as refused:
        fab_auth.settings_from_conf(conf(**oidc))
    assert message in str(refused.value)


SETTINGS = OidcSettings(
    name="entra",
    client_id="app",
    client_secret="s",
    metadata_url=ENTRA_METADATA,
    username_claim="preferred_username",
    roles_claim="groups",
    roles_mapping={"g-admins": ["Admin"], "g-readers": ["Viewer"]},
)


def test_the_user_comes_from_the_claims_and_only_mapped_group_values_become_role_keys() -> None:
    claims = {
        "preferred_username": "ada@contoso.com",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": "ada@contoso.com",
        "groups": ["g-readers", "g-unrelated"],
    }
    assert fab_auth.user_info(claims, SETTINGS) == {
        "username": "ada@contoso.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@contoso.com",
        "role_keys": ["g-readers"],
    }
    assert fab_auth.roles_of({"groups": "g-admins"}, SETTINGS) == ["g-admins"]  # one value as a string
    assert fab_auth.roles_of({}, SETTINGS) == []


def test_claims_without_the_username_claim_are_refused_listing_what_they_have() -> None:
    with pytest.raises(
        OidcConfigError,
        match=r"no 'preferred_username' \(\[oidc\] username_claim; claims present: "
        r"email, sub\)",
    ):
        fab_auth.user_info({"sub": "x", "email": "a@b"}, SETTINGS)


def test_the_admin_password_comes_from_the_auth_secrets_passwords_json() -> None:
    assert fab_auth.admin_password("admin", '{"admin": "pw", "ops": "x"}') == "pw"
    with pytest.raises(SystemExit, match="FAB_ADMIN_PASSWORDS_JSON is not set"):
        fab_auth.admin_password("admin", None)
    with pytest.raises(SystemExit, match="is not JSON"):
        fab_auth.admin_password("admin", "admin=pw")
    with pytest.raises(SystemExit, match=r"passwords.json has no password for the admin 'root': add it"):
        fab_auth.admin_password("root", '{"admin": "pw"}')


def test_the_settings_file_fab_loads_is_the_modules_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """include/webserver_config.py, executed as FAB does (Flask's from_pyfile), exports webserver_settings()."""
    from flask import Config

    from scripts.paths import ROOT

    monkeypatch.setenv("AIRFLOW__OIDC__ENABLED", "False")
    loaded = Config(str(ROOT))
    assert loaded.from_pyfile(str(ROOT / "include" / "webserver_config.py"))
    assert loaded["AUTH_TYPE"] == AUTH_DB
