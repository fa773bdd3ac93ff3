"""include/fab_auth_manager.py: an OIDC ID token is checked as the provider's, for this application, current, and
the userinfo endpoint asked only for the same subject. Against a real provider run here (zitadel/oidc's example OP,
as in tests/cluster/test_sign_in_with_oidc.py), whose tokens a client gets through the authorization-code flow.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from include.fab_auth import FAB_AUTH_MANAGER, OidcSettings
from include.fab_auth_manager import OidcFabAuthManager, TokenRefused, verified_claims
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, client_tokens, running_provider

REDIRECT_URI = "http://localhost:1/callback"  # never reached: the client reads the code off the redirect to it


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The provider's address (its issuer, with a trailing /); its users alice and bob."""
    emails = {name: f"{name}@example.com" for name in ("alice", "bob")}
    with running_provider(tmp_path_factory.mktemp("oidc"), emails, REDIRECT_URI) as port:
        yield f"http://localhost:{port}"


def tokens_of(provider: str, username: str) -> dict[str, str]:
    return client_tokens(provider, REDIRECT_URI, username)


def settings(provider: str, **changes: str) -> OidcSettings:
    endpoints = {"issuer": f"{provider}/", "authorize_url": f"{provider}/auth", "token_url": f"{provider}/oauth/token",
                 "jwks_url": f"{provider}/keys", "userinfo_url": f"{provider}/userinfo"}  # fmt: skip
    base = OidcSettings(name="oidc", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, endpoints=endpoints)
    return replace(base, **changes)


@pytest.fixture(scope="module")
def alice(provider: str) -> dict[str, str]:
    return tokens_of(provider, "alice")


def test_an_id_token_of_this_client_names_its_user_through_userinfo(provider: str, alice: dict[str, str]) -> None:
    claims = verified_claims(alice["id_token"], settings(provider), alice["access_token"])
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID])


def test_without_the_access_token_a_token_lacking_the_username_claim_is_refused_naming_it(provider, alice) -> None:
    with pytest.raises(TokenRefused, match=r"no 'preferred_username' claim .* send the access_token"):
        verified_claims(alice["id_token"], settings(provider))
    claims = verified_claims(alice["id_token"], settings(provider, username_claim="sub"))
    assert claims["sub"] == "id-alice"


def test_a_token_for_another_application_is_refused_naming_the_audience(provider, alice) -> None:
    with pytest.raises(TokenRefused, match="'aud' claim is not audience \\(client id\\) 'airflow'"):
        verified_claims(alice["id_token"], settings(provider, client_id="airflow"), alice["access_token"])


def test_a_token_of_another_issuer_is_refused_naming_it(provider, alice) -> None:
    other = settings(provider)
    other = replace(other, endpoints={**other.endpoints, "issuer": "https://login.example.com/"})
    with pytest.raises(TokenRefused, match=r"'iss' claim is not issuer 'https://login\.example\.com/'"):
        verified_claims(alice["id_token"], other, alice["access_token"])


def test_an_altered_token_is_refused(provider, alice) -> None:
    header, payload, signature = alice["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "id-bob"}).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRefused, match="not one the provider signed"):
        verified_claims(f"{header}.{forged}.{signature}", settings(provider), alice["access_token"])
    with pytest.raises(TokenRefused, match="not one the provider signed"):
        verified_claims("not-a-jwt", settings(provider))


def test_another_users_access_token_does_not_lend_its_name(provider, alice) -> None:
    bob = tokens_of(provider, "bob")
    with pytest.raises(TokenRefused, match="another subject"):
        verified_claims(alice["id_token"], settings(provider), bob["access_token"])
    with pytest.raises(TokenRefused, match="refused the access token"):
        verified_claims(alice["id_token"], settings(provider), "forged-access-token")


def test_the_auth_manager_is_the_one_the_chart_names() -> None:
    named = f"{OidcFabAuthManager.__module__}.{OidcFabAuthManager.__qualname__}"
    assert named == FAB_AUTH_MANAGER
