"""scripts/kind_smoke.py and its REST client (scripts/airflow_api.py) against a stand-in Airflow REST API (HTTP on a
free port) and a real Azurite.

The stand-in answers like Airflow 3's api-server: a JWT from POST /auth/token, 401 without it, the DAG unknown
until "parsed", a run that is first running and then ends in the state the test chooses.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from scripts import airflow_api, kind_smoke
from scripts.devstack.services import Azurite

DAG = "example_dataframe_pipeline"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
TOKEN = "jwt-for-tests"


class FakeAirflow(BaseHTTPRequestHandler):
    final_state = "success"
    calls: list[tuple[str, str]]
    polls: dict[str, int]

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.calls.append((method, self.path))
        if (method, self.path) == ("POST", "/auth/token"):
            if body == {"username": "admin", "password": "s3cret"}:
                return self.reply(201, {"access_token": TOKEN})
            return self.reply(401, {"detail": "Invalid credentials"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(401, {"detail": "Not authenticated"})
        run = f"/api/v2/dags/{DAG}/dagRuns/{quote(RUN_ID, safe='')}"
        self.polls[self.path] = self.polls.get(self.path, 0) + 1
        answers = {
            ("GET", f"/api/v2/dags/{DAG}"): (404, {}) if self.polls[self.path] == 1 else (200, {"dag_id": DAG}),
            ("PATCH", f"/api/v2/dags/{DAG}"): (200, {"is_paused": False}),
            ("POST", f"/api/v2/dags/{DAG}/dagRuns"): (200, {"dag_run_id": RUN_ID, "state": "queued"}),
            ("GET", run): (200, {"state": "running" if self.polls[self.path] == 1 else self.final_state}),
            ("GET", f"{run}/taskInstances"): (200, {"task_instances": [{"task_id": "extract", "state": "success"}]}),
            ("GET", f"{run}/taskInstances/extract/xcomEntries"): (200, {"xcom_entries": [{"key": "return_value"}]}),
            ("GET", f"{run}/taskInstances/extract/xcomEntries/return_value"): (
                200,
                {"value": {"azblob_xcom_ref": 1, "uri": "xcom_wasb://airflow-xcom/..."}},
            ),
        }
        status, answer = answers.get((method, self.path), (404, {"detail": "Not Found"}))
        return self.reply(status, answer)

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_PATCH(self) -> None:
        self.handle_any("PATCH")


@pytest.fixture
def api() -> Iterator[type[FakeAirflow]]:
    handler = type("Handler", (FakeAirflow,), {"calls": [], "polls": {}, "final_state": "success"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def azurite_url(azurite: Azurite) -> str:
    """Azurite with one run's XCom and log blobs, plus another run's blob that must not be shown."""
    url = f"http://127.0.0.1:{azurite.port}"
    service = kind_smoke.blob_service(url)
    suffix = uuid.uuid4().hex[:8]
    xcom, logs = service.get_container_client(f"xcom-{suffix}"), service.get_container_client(f"logs-{suffix}")
    xcom.create_container()
    logs.create_container()
    base = f"dag_id={DAG}/run_id={quote(RUN_ID, safe='')}/task_id=extract/map_index=-1/key=return_value"
    xcom.upload_blob(f"{base}/20260101T000000Z-abc.parquet", b"PAR1....PAR1")
    xcom.upload_blob(f"dag_id={DAG}/run_id=other-run/task_id=extract/x.parquet", b"other")
    logs.upload_blob(f"dag_id={DAG}/run_id={RUN_ID}/task_id=extract/attempt=1.log", b"line one\nline two\n")
    yield url
    xcom.delete_container()
    logs.delete_container()


def smoke(api: type[FakeAirflow], azurite_url: str) -> int:
    return kind_smoke.main(["--api-url", api.url, "--azurite-url", azurite_url, "--dag-id", DAG, "--timeout", "30"])


def test_smoke_authenticates_triggers_waits_and_shows_the_runs_blobs(
    api: type[FakeAirflow], azurite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "s3cret")
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _: None)
    assert smoke(api, azurite_url) == 0
    out = capsys.readouterr().out
    assert api.calls[0] == ("POST", "/auth/token")
    assert ("PATCH", f"/api/v2/dags/{DAG}") in api.calls
    assert f"triggered {DAG} run {RUN_ID}" in out
    assert '"azblob_xcom_ref": 1' in out
    assert "/key=return_value/20260101T000000Z-abc.parquet (12 bytes)" in out
    assert f"run_id={RUN_ID}/task_id=extract/attempt=1.log (18 bytes)" in out
    assert "line two" in out
    assert "other-run" not in out
    assert "smoke test passed" in out


def test_a_failed_run_fails_the_smoke_test_with_the_run_id(
    api: type[FakeAirflow], azurite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.final_state = "failed"
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "s3cret")
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _: None)
    assert smoke(api, azurite_url) == 1
    assert f"run {RUN_ID} of {DAG} ended failed" in capsys.readouterr().err


def test_wrong_password_is_reported_with_the_endpoint(
    api: type[FakeAirflow], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "wrong")
    assert smoke(api, "http://127.0.0.1:9") == 1
    assert f"POST {api.url}/auth/token answered 401" in capsys.readouterr().err


def test_the_client_tells_a_404_from_other_failures(api: type[FakeAirflow]) -> None:
    client = airflow_api.Api(api.url)
    with pytest.raises(airflow_api.ApiError, match=f"GET {api.url}/api/v2/dags/{DAG} answered 401") as failure:
        client.call("GET", f"/api/v2/dags/{DAG}")
    assert not isinstance(failure.value, airflow_api.NotFound)
    client.authenticate("admin", "s3cret")
    with pytest.raises(airflow_api.NotFound, match="/api/v2/variables/unset answered 404"):
        client.call("GET", "/api/v2/variables/unset")
    assert not client.exists("/api/v2/variables/unset")


def test_login_is_read_from_the_charts_passwords_secret() -> None:
    encoded = "eyJhZG1pbiI6ICJwdyJ9"  # base64 of {"admin": "pw"}
    assert kind_smoke.passwords_file("passwords.json", encoded) == {"admin": "pw"}
    assert kind_smoke.passwords_file("fernet-key", encoded) == {}
    assert kind_smoke.passwords_file("other.json", "bm90IGpzb24=") == {}  # "not json"
