"""Sign-in for production: the FAB auth manager with OpenID Connect (Microsoft Entra ID or any OIDC provider).

With ``[core] auth_manager`` set to FAB's (the chart's ``auth.manager: fab``), FAB reads its Flask settings from the
file ``[fab] config_file`` names: include/webserver_config.py, which takes them from :func:`webserver_settings`. Those
come from airflow.cfg's ``[oidc]`` section (the chart renders it from ``auth.oidc``), so the chart, the local stack
and a test all configure sign-in the same way:

    [oidc]
    enabled = True
    name = entra                        # the provider's name in FAB: /auth/login/<name>, /auth/oauth-authorized/<name>
    client_id = <application (client) id>
    client_secret = ...                 # AIRFLOW__OIDC__CLIENT_SECRET, from a Secret
    metadata_url = https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration
    # or, instead of metadata_url (a provider whose browser and in-cluster addresses differ):
    # issuer, authorize_url, token_url, jwks_url, userinfo_url
    scope = openid email profile
    username_claim = preferred_username
    roles_claim = groups                # a list (or one string) of values roles_mapping maps
    roles_mapping = {"<group id>": ["Admin"], "<other group id>": ["Viewer"]}
    registration_role = Public          # what a user whose claims map to no role gets: no permissions

Claims are read from the ID token, which authlib has already verified (signature against the provider's keys,
issuer, audience, nonce); only when the username claim is not in it is the provider's userinfo endpoint asked. Roles
are recomputed at every sign-in (AUTH_ROLES_SYNC_AT_LOGIN), so removing someone from a group takes effect at their
next sign-in. Without ``[oidc] enabled`` FAB signs in its own users by password (AUTH_DB): the admin the chart creates
once (``airflow users create``) and whoever that admin adds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SECTION = "oidc"
# FAB's auth manager, which also issues API tokens for OIDC ID tokens (include/fab_auth_manager.py).
FAB_AUTH_MANAGER = "include.fab_auth_manager.OidcFabAuthManager"
ENDPOINTS = ("issuer", "authorize_url", "token_url", "jwks_url")


class OidcConfigError(ValueError):
    """[oidc] in airflow.cfg cannot configure a sign-in; the message says which key and what to set."""


@dataclass(frozen=True)
class OidcSettings:
    name: str
    client_id: str
    client_secret: str
    metadata_url: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)  # issuer, authorize_url, token_url, jwks_url, userinfo_url
    scope: str = "openid email profile"
    username_claim: str = "preferred_username"
    roles_claim: str = "groups"
    roles_mapping: dict[str, list[str]] = field(default_factory=dict)
    registration_role: str = "Public"


def _get(conf: Any, key: str, default: str = "") -> str:
    return (conf.get(SECTION, key, fallback=default) or default).strip()


def oidc_enabled(conf: Any) -> bool:
    return conf.getboolean(SECTION, "enabled", fallback=False)


def settings_from_conf(conf: Any) -> OidcSettings:
    """[oidc] of this airflow.cfg, checked: every error names the key and what to set."""
    missing = [key for key in ("client_id", "client_secret") if not _get(conf, key)]
    if missing:
        raise OidcConfigError(
            f"[oidc] {', '.join(missing)} not set: the chart takes them from auth.oidc.clientId and the Secret "
            f"auth.oidc.clientSecret.existingSecret (env AIRFLOW__OIDC__CLIENT_SECRET)."
        )
    endpoints = {key: value for key in (*ENDPOINTS, "userinfo_url") if (value := _get(conf, key))}
    metadata_url = _get(conf, "metadata_url")
    if not metadata_url and (absent := [key for key in ENDPOINTS if key not in endpoints]):
        raise OidcConfigError(
            f"[oidc] has no metadata_url and no {', '.join(absent)}: set metadata_url to the provider's "
            f".well-known/openid-configuration (auth.oidc.metadataUrl, or auth.oidc.tenantId for Entra ID), or every "
            f"one of {', '.join(ENDPOINTS)} (auth.oidc.endpoints)."
        )
    raw_mapping = _get(conf, "roles_mapping", "{}")
    try:
        mapping = json.loads(raw_mapping)
    except json.JSONDecodeError as err:
        raise OidcConfigError(f"[oidc] roles_mapping is not JSON ({err}): {raw_mapping[:200]}") from err
    if not isinstance(mapping, dict) or not all(
        isinstance(roles, list) and all(isinstance(role, str) for role in roles) for roles in mapping.values()
    ):
        raise OidcConfigError(
            f'[oidc] roles_mapping must map claim values to lists of roles, e.g. {{"<group id>": ["Admin"]}}: '
            f"{raw_mapping[:200]}"
        )
    registration_role = _get(conf, "registration_role", "Public")
    return OidcSettings(
        name=_get(conf, "name", "oidc"),
        client_id=_get(conf, "client_id"),
        client_secret=_get(conf, "client_secret"),
        metadata_url=metadata_url,
        endpoints=endpoints,
        scope=_get(conf, "scope", "openid email profile"),
        username_claim=_get(conf, "username_claim", "preferred_username"),
        roles_claim=_get(conf, "roles_claim", "groups"),
        roles_mapping=mapping,
        registration_role=registration_role,
    )


def remote_app(settings: OidcSettings) -> dict[str, Any]:
    """authlib's registration of the provider (FAB passes it to ``OAuth.register``)."""
    app: dict[str, Any] = {
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "client_kwargs": {"scope": settings.scope},
    }
    if settings.metadata_url:
        app["server_metadata_url"] = settings.metadata_url
    e = settings.endpoints
    # authlib keeps these as the provider's metadata; a metadata document (if any) is fetched on top of them.
    for ours, authlib in (
        ("issuer", "issuer"),
        ("authorize_url", "authorize_url"),
        ("token_url", "access_token_url"),
        ("jwks_url", "jwks_uri"),
        ("userinfo_url", "userinfo_endpoint"),
    ):
        if ours in e:
            app[authlib] = e[ours]
    return app


def roles_of(claims: dict[str, Any], settings: OidcSettings) -> list[str]:
    """The values of the roles claim (a list, or one string) that roles_mapping knows."""
    value = claims.get(settings.roles_claim, [])
    values = [value] if isinstance(value, str) else list(value or [])
    return [str(v) for v in values if str(v) in settings.roles_mapping]


def user_info(claims: dict[str, Any], settings: OidcSettings) -> dict[str, Any]:
    """FAB's user record from the provider's claims: username, names, email and the role keys it maps."""
    username = claims.get(settings.username_claim)
    if not username:
        raise OidcConfigError(
            f"the provider's claims have no {settings.username_claim!r} ([oidc] username_claim; claims present: "
            f"{', '.join(sorted(claims))})"
        )
    return {
        "username": str(username),
        "first_name": claims.get("given_name", ""),
        "last_name": claims.get("family_name", ""),
        "email": claims.get("email", ""),
        "role_keys": roles_of(claims, settings),
    }


def webserver_settings(conf: Any | None = None) -> dict[str, Any]:
    """The Flask/FAB settings include/webserver_config.py exports: OIDC sign-in with [oidc] enabled, else FAB's
    own password users."""
    from flask_appbuilder.const import AUTH_DB, AUTH_OAUTH

    if conf is None:
        from airflow.configuration import conf
    if not oidc_enabled(conf):
        return {"AUTH_TYPE": AUTH_DB}
    settings = settings_from_conf(conf)
    return {
        "AUTH_TYPE": AUTH_OAUTH,
        "OAUTH_PROVIDERS": [{"name": settings.name, "token_key": "access_token", "remote_app": remote_app(settings)}],
        "AUTH_USER_REGISTRATION": True,
        "AUTH_USER_REGISTRATION_ROLE": settings.registration_role,
        "AUTH_ROLES_MAPPING": settings.roles_mapping,
        "AUTH_ROLES_SYNC_AT_LOGIN": True,
        "SECURITY_MANAGER_CLASS": security_manager_class(settings),
    }


def security_manager_class(settings: OidcSettings) -> type:
    """FAB's Airflow security manager, reading users from the ID token's claims by [oidc]'s names."""
    from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride

    class OidcSecurityManager(FabAirflowSecurityManagerOverride):
        def get_oauth_user_info(self, provider: str, resp: dict[str, Any]) -> dict[str, Any]:
            if provider != settings.name:
                return super().get_oauth_user_info(provider, resp)
            claims = dict(resp.get("userinfo") or {})  # the ID token's claims, verified by authlib
            if settings.username_claim not in claims:  # not in the ID token: ask the userinfo endpoint
                claims = {**dict(self.oauth_remotes[provider].userinfo()), **claims}
            try:
                info = user_info(claims, settings)
            except OidcConfigError:
                log.exception("OIDC sign-in through %s refused", provider)
                raise
            log.info("OIDC sign-in of %s through %s, role keys %s", info["username"], provider, info["role_keys"])
            return info

    return OidcSecurityManager


ADMIN_PASSWORDS_ENV = "FAB_ADMIN_PASSWORDS_JSON"


def admin_password(username: str, passwords_json: str | None) -> str:
    """The admin's password from the auth Secret's passwords.json (the chart passes it as FAB_ADMIN_PASSWORDS_JSON)."""
    if not passwords_json:
        raise SystemExit(f"{ADMIN_PASSWORDS_ENV} is not set: it carries the auth Secret's passwords.json")
    try:
        passwords = json.loads(passwords_json)
    except json.JSONDecodeError as err:
        raise SystemExit(
            f"{ADMIN_PASSWORDS_ENV} is not JSON ({err}): check auth.existingSecret's passwords.json"
        ) from err
    password = passwords.get(username) if isinstance(passwords, dict) else None
    if not password:
        raise SystemExit(
            f"passwords.json has no password for the admin {username!r}: add it to the passwords.json of "
            f'auth.existingSecret ({{"{username}": "<password>"}}), or set auth.admin.username to a user it has.'
        )
    return password


def create_admin(username: str, email: str, password: str) -> str:
    """Create the FAB admin unless a user of that name exists (left alone, password included); says which."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        if appbuilder.sm.find_user(username=username):
            return f"FAB user {username!r} exists: left as it is"
        role = appbuilder.sm.find_role("Admin")
        if not appbuilder.sm.add_user(username, "Admin", "User", email, role, password):
            raise SystemExit(f"FAB did not create the admin {username!r} (is {email!r} another user's email?)")
        return f"FAB admin {username!r} created"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m include.fab_auth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser(
        "create-admin", help=f"create the FAB admin once (password from ${ADMIN_PASSWORDS_ENV})"
    )
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    password = admin_password(args.username, os.environ.get(ADMIN_PASSWORDS_ENV))
    print(create_admin(args.username, args.email, password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
