"""The chart's auth manager for ``auth.manager: fab``: FAB's, whose ``POST /auth/token`` also takes an OpenID Connect
ID token, so that scripts of users who sign in through the provider get REST API tokens without a browser.

FAB's own endpoint takes a username and password, which OIDC users do not have. With ``[oidc] enabled`` it also
takes ``{"id_token": "<JWT>"}`` (plus ``"access_token"`` when the provider keeps the username claim out of its ID
tokens), from any client the provider issues tokens to for this application (a device-code or authorization-code
flow, e.g. kubelogin-style tools or the Azure CLI for Entra ID). The ID token is checked as Kubernetes' OIDC
authenticator checks one: its signature against the provider's keys, its issuer, its audience (this application's
client id) and its expiry; the userinfo endpoint is asked only with the access token, and only for the same subject.
The user is then signed in as at a browser sign-in (include/fab_auth.py: the same claims, the same role mapping,
registered on first use), and gets Airflow's JWT. A refused token gets a 401 that says why.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

from include.fab_auth import OidcSettings, oidc_enabled, settings_from_conf, user_info

log = logging.getLogger(__name__)
# What the provider may sign ID tokens with (joserfc's JWS algorithms but the symmetric ones, which would make the
# client secret a signing key).
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]
LEEWAY_S = 60  # clock skew allowed on exp, nbf and iat
TIMEOUT_S = 10


class TokenRefused(Exception):
    """An ID token (or its access token) that signs nobody in; the message says why, for the caller."""


def provider_metadata(settings: OidcSettings) -> dict[str, Any]:
    """The provider's issuer, keys and userinfo addresses: its metadata document, with [oidc]'s explicit endpoints
    over it (the addresses the api-server reaches it at)."""
    metadata: dict[str, Any] = {}
    if settings.metadata_url:
        response = requests.get(settings.metadata_url, timeout=TIMEOUT_S)
        response.raise_for_status()
        metadata = response.json()
    for ours, theirs in (("issuer", "issuer"), ("jwks_url", "jwks_uri"), ("userinfo_url", "userinfo_endpoint")):
        if ours in settings.endpoints:
            metadata[theirs] = settings.endpoints[ours]
    return metadata


def verified_claims(
    id_token: str, settings: OidcSettings, access_token: str | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The claims of ``id_token`` once it is shown to be the provider's, for this application, and current; the
    userinfo endpoint's claims added (same subject) when the username claim is not among them."""
    from joserfc import jwt
    from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
    from joserfc.jwk import KeySet

    metadata = metadata if metadata is not None else provider_metadata(settings)
    keys = requests.get(metadata["jwks_uri"], timeout=TIMEOUT_S)
    keys.raise_for_status()
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_S,
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": settings.client_id},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(keys.json()), algorithms=ALGORITHMS)
        registry.validate(token.claims)
    except ExpiredTokenError as err:
        raise TokenRefused("the ID token has expired: get a new one from the provider") from err
    except ClaimError as err:  # a claim missing or not the expected value
        said = {"iss": f"issuer {metadata['issuer']!r}", "aud": f"audience (client id) {settings.client_id!r}"}
        raise TokenRefused(f"the ID token's {err.claim!r} claim is not {said.get(err.claim, 'valid')}: {err}") from err
    except (JoseError, ValueError) as err:  # a bad signature, an unknown key, not a JWT at all
        raise TokenRefused(f"the ID token is not one the provider signed: {err}") from err
    claims = dict(token.claims)
    if settings.username_claim in claims:
        return claims
    if not access_token:
        raise TokenRefused(
            f"the ID token has no {settings.username_claim!r} claim ([oidc] username_claim): send the access_token "
            "too, and the provider's userinfo endpoint names the user"
        )
    response = requests.get(
        metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT_S
    )
    if response.status_code != 200:
        raise TokenRefused(f"the provider's userinfo endpoint refused the access token (HTTP {response.status_code})")
    userinfo = response.json()
    if userinfo.get("sub") != claims["sub"]:
        raise TokenRefused("the access token belongs to another subject than the ID token")
    return {**userinfo, **claims}


class OidcFabAuthManager(FabAuthManager):
    """FabAuthManager whose token endpoint also signs OIDC users in by their provider's ID token."""

    def create_token(self, headers: dict[str, str], body: dict[str, Any]) -> Any:
        if "id_token" not in body:
            return super().create_token(headers, body)
        from airflow.configuration import conf
        from fastapi import HTTPException, status

        if not oidc_enabled(conf):
            raise ValueError("this Airflow signs in no one through OIDC ([oidc] enabled, auth.oidc.enabled)")
        settings = settings_from_conf(conf)
        try:
            claims = verified_claims(str(body["id_token"]), settings, body.get("access_token"))
            info = user_info(claims, settings)
        except TokenRefused as err:
            log.warning("API token refused to an ID token: %s", err)
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=f"ID token refused: {err}") from err
        user = self.security_manager.auth_user_oauth(info, rotate_session_id=False)
        if user is None:
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=f"{info['username']} may not sign in")
        log.info("API token for %s by ID token, role keys %s", info["username"], info["role_keys"])
        return user
