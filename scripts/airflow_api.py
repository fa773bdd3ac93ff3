"""A minimal Airflow 3 REST client (stdlib only): the one way scripts and tests talk to a running api-server.

Used by the smoke test of a deployment (scripts/kind_smoke.py), the local stack's demo (scripts/devstack/stack.py),
the benchmarks and the e2e and cluster tests. :class:`Api` authenticates with a JWT from ``POST /auth/token``
(Airflow 3's SimpleAuthManager) and calls ``/api/v2``; the functions around it trigger a DAG and poll its run within
a bound. Every failure is an :class:`ApiError` whose message names the call: :class:`NotFound` when the API
answered 404 (a DAG not parsed yet, a Variable not set), :class:`TimedOut` when a bounded wait ran out.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

FINISHED = {"success", "failed"}
T = TypeVar("T")


class ApiError(Exception):
    """A REST call failed, or a run did not end as expected; the message says which call or run."""


class NotFound(ApiError):
    """The API answered 404: what the path names does not exist (yet)."""


class TimedOut(ApiError):
    """A bounded wait (:func:`wait_for`) ran out; the message says what it waited for."""


class Api:
    """An Airflow 3 REST client that authenticates with a JWT from /auth/token; ``dry_run`` prints the calls."""

    def __init__(self, base_url: str, *, dry_run: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.dry_run = dry_run
        self.token = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer of ``method path``; raises :class:`NotFound` on 404, :class:`ApiError` on any failure."""
        url = f"{self.base_url}{path}"
        if self.dry_run:
            print(f"+ {method} {url}" + (f" {json.dumps(body)}" if body is not None else ""))
            return {}
        request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            error = NotFound if err.code == 404 else ApiError
            raise error(f"{method} {url} answered {err.code}: {detail}") from err
        except urllib.error.URLError as err:
            raise ApiError(f"{method} {url} failed: {err.reason} (is the port-forward running?)") from err

    def exists(self, path: str) -> bool:
        """Whether ``GET path`` finds something (False on 404; any other failure raises)."""
        try:
            self.call("GET", path)
        except NotFound:
            return False
        return True

    def dag_exists(self, dag_id: str) -> bool:
        """Whether the API knows ``dag_id`` yet (a pushed DAG appears once its bundle is refreshed and parsed)."""
        return self.exists(f"/api/v2/dags/{quote(dag_id, safe='')}")

    def authenticate(self, username: str, password: str) -> None:
        answer = self.call("POST", "/auth/token", {"username": username, "password": password})
        self.token = answer.get("access_token", "dry-run" if self.dry_run else "")
        if not self.token:
            raise ApiError(f"POST {self.base_url}/auth/token returned no access_token: {answer}")


def wait_for(what: str, check: Callable[[], T], *, timeout: float, interval: float = 2.0) -> T:
    """Poll ``check()`` until it returns something truthy and return that; raise :class:`TimedOut` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_reparsed(api: Api, dag_id: str, *, previous_gone: Callable[[], bool], timeout: float) -> None:
    """Wait until ``dag_id`` was parsed by a dag-processor of an upgraded release. ``previous_gone`` tells when no
    dag-processor pod of the revision before is left, not even stopping; any parse after that moment is the new
    one's. (The DAG version count cannot tell: a version is only added when the one before has runs.)"""
    wait_for("the previous dag-processor pods gone", previous_gone, timeout=timeout)
    since = datetime.now(UTC)
    wait_for(
        f"{dag_id} parsed by the new dag-processor",
        lambda: (
            datetime.fromisoformat(api.call("GET", f"/api/v2/dags/{quote(dag_id, safe='')}")["last_parsed_time"])
            > since
        ),
        timeout=timeout,
    )


def run_dag(api: Api, dag_id: str, *, timeout: float, interval: float = 2.0, conf: dict[str, Any] | None = None) -> str:
    """Unpause and trigger ``dag_id`` (with ``conf``); return the run id once the run succeeded."""
    if not api.dry_run:
        what = f"DAG {dag_id} to be parsed (is it in dags/ and pushed?)"
        wait_for(what, lambda: api.dag_exists(dag_id), timeout=timeout, interval=interval)
    run_id = trigger_dag(api, dag_id, conf)
    if api.dry_run:
        api.call("GET", run_path(dag_id, run_id))
        return run_id
    state = wait_for_run(api, dag_id, run_id, timeout=timeout, interval=interval)
    if state != "success":
        show_tasks(api, dag_id, run_id)
        raise ApiError(f"run {run_id} of {dag_id} ended {state}: see the task states above and their logs in the UI")
    return run_id


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def task_instances(api: Api, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """task_id -> the run's task instance, as the REST API returns it."""
    answer = api.call("GET", f"{run_path(dag_id, run_id)}/taskInstances")
    return {ti["task_id"]: ti for ti in answer.get("task_instances", [])}


def trigger_dag(api: Api, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Unpause ``dag_id`` and start a run of it (with ``conf``); return the run id."""
    api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
    run_id = run.get("dag_run_id", "<run_id>")
    print(f"    triggered {dag_id} run {run_id}")
    return run_id


def wait_for_run(api: Api, dag_id: str, run_id: str, *, timeout: float, interval: float = 2.0) -> str:
    """Wait until the run has finished; return its state (success or failed)."""

    def finished() -> str | None:
        state = api.call("GET", run_path(dag_id, run_id)).get("state")
        return state if state in FINISHED else None

    return wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout=timeout, interval=interval)


def show_tasks(api: Api, dag_id: str, run_id: str) -> list[str]:
    """Print each task's state and the XComs it stored (the raw DB value: our readable reference for big ones);
    return the task ids."""
    run = run_path(dag_id, run_id)
    tasks = task_instances(api, dag_id, run_id)
    for ti in tasks.values():
        print(f"    task {ti['task_id']}: {ti['state']}")
        entries = api.call("GET", f"{run}/taskInstances/{ti['task_id']}/xcomEntries").get("xcom_entries", [])
        for entry in entries:
            path = f"{run}/taskInstances/{ti['task_id']}/xcomEntries/{quote(entry['key'], safe='')}"
            value = api.call("GET", path).get("value")
            print(f"      xcom {entry['key']}: {xcom_text(value)}")
    return list(tasks)


def xcom_text(value: Any, limit: int = 300) -> str:
    """An XCom value as printed: a Blob reference whole (it is the point of the demo), anything else cut at
    ``limit`` characters (an inline DataFrame is a long hex string)."""
    if isinstance(value, dict) and "azblob_xcom_ref" in value:
        return json.dumps(value, sort_keys=True)
    text = json.dumps(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
