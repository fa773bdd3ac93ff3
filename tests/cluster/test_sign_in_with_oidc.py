"""auth.manager fab on the local cluster: sign-in through a real OpenID Connect provider, roles from its claims.

The provider is zitadel/oidc's example OP (scripts/bootstrap builds it from the Go module proxy), run on this machine
for the module: the browser side (a scripted authorization-code flow: Airflow's login redirect, the provider's login
form, its redirect back with a code) reaches it at http://localhost:<port>, which is also its issuer, and the
api-server's pods reach its token, keys and userinfo endpoints at the node's address: auth.oidc.endpoints, the
values for a provider whose browser-facing and in-cluster addresses differ. The provider puts no profile claims in
its ID tokens, so the username comes from its userinfo endpoint (include/fab_auth.py's fallback), and it has no group
claim: roles are mapped from the email claim here (auth.oidc.rolesClaim), from groups on Entra ID.

The module upgrades the release to FAB and back to the profiles (SimpleAuthManager) at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml

from scripts.airflow_api import Api, ApiError, NotFound, wait_for
from scripts.devstack.services import free_port
from scripts.localcluster.cluster import NODE_IP
from tests.cluster.conftest import Deployment
from tests.cluster.gated import ROLLOUT_BOUND_S
from tests.support.helm import FULLNAME
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, PASSWORD, client_tokens, login_form, running_provider

pytestmark = pytest.mark.slow
PROVIDER = "oidc"
SECRET_NAME = "oidc-client"
DAG_ID = "example_dataframe_pipeline"
USERS = {  # the provider's users: username -> (email, FAB role the mapping gives, or None)
    "alice": ("alice@example.com", "Admin"),
    "bob": ("bob@example.com", "Viewer"),
    "carol": ("carol@example.com", None),
}


@dataclass
class SignIn:
    api_port: int
    provider_port: int

    @property
    def base(self) -> str:
        return f"http://localhost:{self.api_port}"


def oidc_values(api_port: int, provider_port: int) -> dict:
    """FAB with the provider; base_url is where the browser reaches Airflow (FAB sends it back there signed in)."""
    browser, cluster = f"http://localhost:{provider_port}", f"http://{NODE_IP}:{provider_port}"
    return {
        "config": {"api": {"base_url": f"http://localhost:{api_port}"}},
        # kubectl port-forward reaches the pod from its own 127.0.0.1: the "proxy" here.
        "apiServer": {"forwardedAllowIps": "127.0.0.1"},
        "auth": {
            "manager": "fab",
            "oidc": {
                "enabled": True,
                "name": PROVIDER,
                "clientId": CLIENT_ID,
                "clientSecret": {"existingSecret": SECRET_NAME, "key": "client-secret"},
                "endpoints": {
                    "issuer": f"{browser}/",
                    "authorizeUrl": f"{browser}/auth",
                    "tokenUrl": f"{cluster}/oauth/token",
                    "jwksUrl": f"{cluster}/keys",
                    "userinfoUrl": f"{cluster}/userinfo",
                },
                "rolesClaim": "email",
                "rolesMapping": {email: [role] for email, role in USERS.values() if role},
            },
        },
    }


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(api port, provider port): the provider running, its redirect URI on the api port-forward to come."""
    api_port = free_port()
    emails = {name: email for name, (email, _) in USERS.items()}
    with running_provider(tmp_path_factory.mktemp("oidc"), emails, redirect_uri(api_port)) as provider_port:
        yield api_port, provider_port


def redirect_uri(api_port: int) -> str:
    return f"http://localhost:{api_port}/auth/oauth-authorized/{PROVIDER}"


@pytest.fixture(scope="module")
def signed_in(
    deployment: Deployment, provider: tuple[int, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignIn]:
    api_port, provider_port = provider
    values = tmp_path_factory.mktemp("values") / "oidc.yaml"
    values.write_text(yaml.safe_dump(oidc_values(api_port, provider_port)))
    secret = ["create", "secret", "generic", SECRET_NAME, f"--from-literal=client-secret={CLIENT_SECRET}"]
    deployment.cluster.kubectl(*secret)
    try:
        deployment.upgrade("--values", str(values))
        wait_for("the api-server on FAB, alone", lambda: deployment.api_servers_settled(1), timeout=ROLLOUT_BOUND_S)
        with deployment.cluster.port_forward(f"{FULLNAME}-api-server", 8080, local=api_port):
            yield SignIn(api_port, provider_port)
    finally:
        deployment.upgrade()
        wait_for("the api-server back, alone", lambda: deployment.api_servers_settled(1), timeout=ROLLOUT_BOUND_S)
        deployment.cluster.kubectl("delete", "secret", SECRET_NAME, "--ignore-not-found")


def sign_in(session: requests.Session, flow: SignIn, username: str, password: str = PASSWORD) -> requests.Response:
    """The browser's authorization-code flow: Airflow's login redirects to the provider, its form is filled in, and
    its redirect back to Airflow with a code ends at Airflow (which then holds the session and the `_token` cookie)."""
    started = session.get(f"{flow.base}/auth/login/{PROVIDER}", timeout=30)
    assert started.status_code == 200, (started.status_code, started.url, started.text[:300])
    assert urlparse(started.url).port == flow.provider_port, f"no redirect to the provider: {started.url}"
    action, request_id = login_form(started)
    return session.post(action, data={"id": request_id, "username": username, "password": password}, timeout=60)


def token_of(username: str, flow: SignIn) -> str:
    session = requests.Session()
    done = sign_in(session, flow, username)
    token = session.cookies.get("_token")
    assert token, f"no _token cookie after {username}'s sign-in (ended at {done.url}: {done.text[:300]})"
    assert urlparse(done.url).port == flow.api_port, done.url
    return token


def api_as(token: str, flow: SignIn) -> Api:
    api = Api(flow.base)
    api.token = token
    return api


def trigger(api: Api) -> str:
    run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "note": "oidc sign-in test"})
    return run["dag_run_id"]


def test_the_admin_created_once_signs_in_with_its_password(deployment: Deployment, signed_in: SignIn) -> None:
    """The db-migrate Job created auth.admin with the auth Secret's password; FAB issues API tokens to it."""
    admin = Api(signed_in.base)
    admin.authenticate(*deployment.login())
    assert admin.call("GET", f"/api/v2/dags/{DAG_ID}")["dag_id"] == DAG_ID
    with pytest.raises(ApiError, match="401"):
        Api(signed_in.base).authenticate(deployment.login()[0], "not-the-password")


def test_a_user_the_mapping_makes_admin_signs_in_through_the_provider_and_triggers_a_dag(signed_in: SignIn) -> None:
    admin = api_as(token_of("alice", signed_in), signed_in)
    run_id = trigger(admin)
    assert admin.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["dag_run_id"] == run_id
    admin.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
    admin.call("DELETE", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")


def test_a_viewer_reads_but_cannot_trigger_and_an_unmapped_user_reads_nothing(signed_in: SignIn) -> None:
    viewer = api_as(token_of("bob", signed_in), signed_in)
    assert viewer.call("GET", f"/api/v2/dags/{DAG_ID}")["dag_id"] == DAG_ID
    with pytest.raises(ApiError, match="403"):
        trigger(viewer)
    nobody = api_as(token_of("carol", signed_in), signed_in)
    with pytest.raises(ApiError, match="403"):
        nobody.call("GET", f"/api/v2/dags/{DAG_ID}")


def rest_token(flow: SignIn, body: dict[str, str]) -> requests.Response:
    return requests.post(f"{flow.base}/auth/token", json=body, timeout=30)


def test_a_script_of_an_oidc_user_trades_the_providers_id_token_for_an_api_token(signed_in: SignIn) -> None:
    """No browser: a client of the provider gets alice's and bob's tokens (the authorization-code flow, as a CLI's
    device flow would), and /auth/token trades each ID token for Airflow's, with the roles of a browser sign-in."""
    provider = f"http://localhost:{signed_in.provider_port}"
    for username, may_trigger in (("alice", True), ("bob", False)):
        tokens = client_tokens(provider, redirect_uri(signed_in.api_port), username)
        answer = rest_token(signed_in, {"id_token": tokens["id_token"], "access_token": tokens["access_token"]})
        assert answer.status_code == 201, answer.text
        api = api_as(answer.json()["access_token"], signed_in)
        assert api.call("GET", f"/api/v2/dags/{DAG_ID}")["dag_id"] == DAG_ID
        if may_trigger:
            run_id = trigger(api)
            api.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
            api.call("DELETE", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        else:
            with pytest.raises(ApiError, match="403"):
                trigger(api)


def test_an_id_token_that_signs_nobody_in_gets_a_401_saying_why(signed_in: SignIn) -> None:
    provider = f"http://localhost:{signed_in.provider_port}"
    tokens = client_tokens(provider, redirect_uri(signed_in.api_port), "alice")
    header, _, signature = tokens["id_token"].split(".")
    forged = rest_token(signed_in, {"id_token": f"{header}.e30.{signature}", "access_token": tokens["access_token"]})
    assert forged.status_code == 401, forged.text
    assert "ID token refused: the ID token is not one the provider signed" in forged.json()["detail"]
    without = rest_token(signed_in, {"id_token": tokens["id_token"]})
    assert without.status_code == 401, without.text
    assert "no 'preferred_username' claim" in without.json()["detail"]
    assert rest_token(signed_in, {"username": "alice", "password": PASSWORD}).status_code == 401  # no FAB password


def test_the_xcom_preview_asks_fab_whether_the_user_may_read_the_dags_xcoms(signed_in: SignIn) -> None:
    """include/plugins/xcom_preview.py in the image's api-server: the viewer (Viewer may read XComs) is let through to
    the lookup (no such run: 404 naming the XCom), the unmapped user is refused (403), no one signed in gets 401."""
    path = f"/xcom-preview/api/preview?dag_id={DAG_ID}&run_id=no-such-run&task_id=extract"
    viewer = api_as(token_of("bob", signed_in), signed_in)
    with pytest.raises(NotFound, match=r"No XCom 'return_value' of example_dataframe_pipeline\.extract"):
        viewer.call("GET", path)
    nobody = api_as(token_of("carol", signed_in), signed_in)
    with pytest.raises(ApiError, match="answered 403"):
        nobody.call("GET", path)
    with pytest.raises(ApiError, match="answered 401"):
        Api(signed_in.base).call("GET", path)


def test_a_wrong_password_at_the_provider_signs_nobody_in(signed_in: SignIn) -> None:
    session = requests.Session()
    refused = sign_in(session, signed_in, "alice", "wrong")
    assert urlparse(refused.url).port == signed_in.provider_port, refused.url
    assert not session.cookies.get("_token")


def test_the_users_the_provider_signed_in_are_fab_users_with_the_mapped_roles(
    deployment: Deployment, signed_in: SignIn
) -> None:
    admin = Api(signed_in.base)
    admin.authenticate(*deployment.login())
    for username in USERS:
        token_of(username, signed_in)
    users = {u["username"]: u for u in admin.call("GET", "/auth/fab/v1/users?limit=100")["users"]}
    for username, (email, role) in USERS.items():
        assert users[username]["email"] == email
        # Every user the provider signs in gets auth.oidc.registrationRole (Public: no permissions) besides.
        assert {r["name"] for r in users[username]["roles"]} == {"Public", *([role] if role else [])}


def test_behind_a_tls_terminating_proxy_the_redirect_uri_is_https(signed_in: SignIn) -> None:
    """apiServer.forwardedAllowIps: FAB builds the redirect URI from X-Forwarded-Proto, as an ingress terminating TLS
    sends it (Entra ID accepts no http redirect URI but localhost's)."""
    login = f"{signed_in.base}/auth/login/{PROVIDER}"
    callback = f"localhost:{signed_in.api_port}/auth/oauth-authorized/{PROVIDER}"
    for proto in ("https", "http"):
        answer = requests.get(login, headers={"X-Forwarded-Proto": proto}, allow_redirects=False, timeout=30)
        assert answer.status_code == 302, (answer.status_code, answer.text[:300])
        location = urlparse(answer.headers["Location"])
        assert location.port == signed_in.provider_port, answer.headers["Location"]
        assert parse_qs(location.query)["redirect_uri"] == [f"{proto}://{callback}"]
