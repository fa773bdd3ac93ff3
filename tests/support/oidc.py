"""A real OpenID Connect provider for tests: zitadel/oidc's example OP (scripts/bootstrap builds it from the Go module
proxy), run on this machine with users of the test's own, and a client's authorization-code flow against it.

Its confidential client ``web`` (secret ``secret``) accepts the one redirect URI the provider is started with. Its
issuer is http://localhost:<port>/; its ID tokens carry no profile claims (its userinfo endpoint has them).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from scripts.devstack.services import free_port, wait_for_port
from scripts.paths import OIDC_PROVIDER

CLIENT_ID, CLIENT_SECRET = "web", "secret"
PASSWORD = "correct-horse-battery"


def provider_users(emails: dict[str, str]) -> dict:
    """The provider's users file: username -> email, every one with PASSWORD."""
    return {
        f"id-{name}": {
            "ID": f"id-{name}",
            "Username": name,
            "Password": PASSWORD,
            "FirstName": name.title(),
            "LastName": "Example",
            "Email": email,
            "EmailVerified": True,
            "PreferredLanguage": "en",
        }
        for name, email in emails.items()
    }


@contextmanager
def running_provider(folder: Path, emails: dict[str, str], redirect_uri: str, port: int | None = None) -> Iterator[int]:
    """The provider on ``port`` (a free one by default) until the block ends; yields the port. Its log is in
    ``folder``/provider.log."""
    assert OIDC_PROVIDER.exists(), f"{OIDC_PROVIDER} is missing: run `make install` (scripts/bootstrap cluster)"
    (folder / "users.json").write_text(json.dumps(provider_users(emails)))
    port = port or free_port()
    env = {"PORT": str(port), "REDIRECT_URI": redirect_uri, "USERS_FILE": str(folder / "users.json")}
    with (folder / "provider.log").open("wb") as log:
        process = subprocess.Popen([str(OIDC_PROVIDER)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def login_form(page: requests.Response) -> tuple[str, str]:
    """The provider's login form on ``page``: where it posts, and the auth request it belongs to."""
    form = re.search(r'<form method="POST" action="([^"]+)"', page.text)
    request_id = re.search(r'name="id" value="([^"]+)"', page.text)
    assert form, f"the provider's login form is not on {page.url}: {page.text[:300]}"
    assert request_id, f"the login form names no auth request: {page.text[:300]}"
    return urljoin(page.url, form[1]), html.unescape(request_id[1])


def client_tokens(provider: str, redirect_uri: str, username: str, password: str = PASSWORD) -> dict[str, str]:
    """What a client of the provider (a script, a CLI) gets for ``username``: the authorization-code flow up to the
    redirect to ``redirect_uri`` (read, not followed), then the code exchanged: id_token, access_token, ..."""
    session = requests.Session()
    query = {"client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code",
             "scope": "openid email profile", "state": "s", "nonce": "n"}  # fmt: skip
    action, request_id = login_form(session.get(f"{provider}/auth", params=query, timeout=30))
    fields = {"id": request_id, "username": username, "password": password}
    response = session.post(action, data=fields, timeout=30, allow_redirects=False)
    for _ in range(10):  # the provider's own redirects, up to the one to the client
        assert response.is_redirect, f"no redirect after {response.url}: {response.text[:300]}"
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(redirect_uri):
            break
        response = session.get(location, timeout=30, allow_redirects=False)
    code = parse_qs(urlparse(location).query)["code"][0]
    exchanged = requests.post(
        f"{provider}/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=30,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
    )  # fmt: skip
    exchanged.raise_for_status()
    return exchanged.json()
