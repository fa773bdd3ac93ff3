"""Smoke test of a running deployment, and the kubectl look-ups scripts/kind needs (run with .venv/bin/python).

``scripts/kind smoke`` port-forwards the api-server and Azurite, then calls this module to (over the REST client
of scripts/airflow_api.py):
1. get a JWT from ``POST /auth/token`` (Airflow 3's SimpleAuthManager),
2. wait until the DAG is parsed, unpause it and trigger a run through ``/api/v2``,
3. poll the run (bounded) until it succeeds, and print each task's state and XCom references,
4. list that run's blobs in Azurite (the XCom values and the task logs) and print the head of one log.

Other modes, used by scripts/kind: ``--service COMPONENT`` prints ``svc/<name>`` of the release's Service with
``app.kubernetes.io/component=COMPONENT``; ``--print-login`` prints the UI user and password (from
AIRFLOW_USERNAME/AIRFLOW_PASSWORD, else from the chart's SimpleAuthManager passwords Secret). ``--dry-run``
prints the kubectl commands and HTTP requests instead of making them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.airflow_api import Api, ApiError, TimedOut, run_dag, show_tasks, wait_for

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


class SmokeError(Exception):
    """The deployment did not behave as the smoke test expects; the message says where."""


@dataclass
class Kube:
    context: str
    namespace: str
    release: str
    dry_run: bool = False

    def get_json(self, *args: str) -> dict[str, Any]:
        cmd = [
            os.environ.get("KUBECTL", "kubectl"),
            "--context",
            self.context,
            "--namespace",
            self.namespace,
            "get",
            *args,
            "--output=json",
        ]
        if self.dry_run:
            print("+ " + shlex.join(cmd), file=sys.stderr)
            return {"items": []}
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SmokeError(f"{shlex.join(cmd)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def service(self, component: str) -> str:
        """``svc/<name>`` of the release's Service for ``component`` (labels, not names: no chart naming guess)."""
        selector = f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component={component}"
        names = [item["metadata"]["name"] for item in self.get_json("service", f"--selector={selector}")["items"]]
        if self.dry_run:
            return f"svc/<{component}>"
        if len(names) != 1:
            raise SmokeError(
                f"expected one Service labelled {selector} in namespace {self.namespace}, found {names or 'none'}: "
                f"is release {self.release!r} installed (make kind-up)?"
            )
        return f"svc/{names[0]}"

    def login(self) -> tuple[str, str]:
        """The UI login: AIRFLOW_USERNAME/AIRFLOW_PASSWORD, else the chart's SimpleAuthManager passwords file."""
        if os.environ.get("AIRFLOW_PASSWORD"):
            return os.environ.get("AIRFLOW_USERNAME", "admin"), os.environ["AIRFLOW_PASSWORD"]
        selector = f"app.kubernetes.io/instance={self.release}"
        for secret in self.get_json("secret", f"--selector={selector}")["items"]:
            for key, encoded in (secret.get("data") or {}).items():
                passwords = passwords_file(key, encoded)
                if passwords:
                    user = os.environ.get("AIRFLOW_USERNAME") or next(iter(passwords))
                    if user in passwords:
                        return user, passwords[user]
        if self.dry_run:
            return "<user>", "<password>"
        raise SmokeError(
            f"no SimpleAuthManager passwords file (a *.json key mapping users to passwords) in the Secrets of "
            f"release {self.release!r}; set AIRFLOW_USERNAME and AIRFLOW_PASSWORD"
        )


def passwords_file(key: str, encoded: str) -> dict[str, str]:
    """The users->passwords mapping if this Secret key holds a SimpleAuthManager passwords file, else {}."""
    if not key.endswith(".json"):
        return {}
    try:
        content = json.loads(base64.b64decode(encoded))
    except ValueError:
        return {}
    if isinstance(content, dict) and content and all(isinstance(v, str) for v in content.values()):
        return content
    return {}


def blob_service(azurite_url: str) -> BlobServiceClient:
    """A client of Azurite's development account at ``azurite_url`` (explicit BlobEndpoint keeps the host)."""
    from azure.storage.blob import BlobServiceClient

    from scripts.devstack.services import azurite_connection_string

    url = urlsplit(azurite_url)
    return BlobServiceClient.from_connection_string(azurite_connection_string(url.hostname, url.port or 10000))


def run_blobs(azurite_url: str, dag_id: str, run_id: str) -> list[tuple[str, str, int]]:
    """(container, blob name, size) of every blob in Azurite that belongs to this DAG run (XComs and logs)."""
    service = blob_service(azurite_url)
    run_markers = (f"run_id={run_id}/", f"run_id={quote(run_id, safe='')}/")
    found = []
    for container in service.list_containers():
        client = service.get_container_client(container.name)
        for blob in client.list_blobs():
            if f"dag_id={dag_id}/" in blob.name and any(marker in blob.name for marker in run_markers):
                found.append((container.name, blob.name, blob.size))
    return found


LOG_UPLOAD_BOUND_S = 60


def show_blobs(azurite_url: str, dag_id: str, run_id: str, task_ids: list[str]) -> None:
    """Print the run's blobs and the head of one task log; fail when XCom or log blobs are missing.

    A task's log reaches Blob after the task reported its state (its supervisor uploads it once the task process
    has exited), so the last task's log may trail the run's success: wait for every task's log, within a bound.
    """

    def logged() -> list[tuple[str, str, int]] | None:
        found = run_blobs(azurite_url, dag_id, run_id)
        names = [name for _, name, _ in found if name.endswith(".log")]
        return found if all(any(f"task_id={task}/" in name for name in names) for task in task_ids) else None

    try:
        blobs = wait_for("a log blob of every task", logged, timeout=LOG_UPLOAD_BOUND_S, interval=1)
    except TimedOut:
        blobs = run_blobs(azurite_url, dag_id, run_id)
    logs = [blob for blob in blobs if blob[1].endswith(".log")]
    xcoms = [blob for blob in blobs if not blob[1].endswith(".log")]
    for container, name, size in blobs:
        print(f"    blob {container}/{name} ({size} bytes)")
    if not xcoms:
        raise SmokeError(f"no XCom blob of run {run_id} in Azurite {azurite_url}: did the XCom backend offload?")
    missing = [task for task in task_ids if not any(f"task_id={task}/" in name for _, name, _ in logs)]
    if missing:
        raise SmokeError(
            f"no log blob of task(s) {', '.join(missing)} of run {run_id} in Azurite {azurite_url} within "
            f"{LOG_UPLOAD_BOUND_S} s: is remote logging on?"
        )
    service = blob_service(azurite_url)
    container, name, _ = logs[0]
    text = service.get_blob_client(container, name).download_blob().readall().decode(errors="replace")
    print(f"    head of {container}/{name}:")
    for line in text.splitlines()[:8]:
        print(f"      {line[:200]}")


def smoke(args: argparse.Namespace, kube: Kube) -> None:
    username, password = kube.login()
    api = Api(args.api_url, dry_run=args.dry_run)
    api.authenticate(username, password)
    run_id = run_dag(api, args.dag_id, timeout=args.timeout)
    task_ids = show_tasks(api, args.dag_id, run_id)
    if args.dry_run:
        print(f"+ list blobs of {args.dag_id} {run_id} in every container of {args.azurite_url}")
        return
    show_blobs(args.azurite_url, args.dag_id, run_id, task_ids)
    print(f"==> smoke test passed: {args.dag_id} run {run_id} succeeded, XCom and log blobs are in Azurite")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", default="kind-airflow-azblob")
    parser.add_argument("--namespace", default="airflow")
    parser.add_argument("--release", default="airflow")
    parser.add_argument("--dry-run", action="store_true")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--service", metavar="COMPONENT", help="print svc/<name> of the release's COMPONENT Service")
    mode.add_argument("--print-login", action="store_true", help="print the UI user and password")
    mode.add_argument("--api-url", help="api-server base URL (port-forwarded), e.g. http://127.0.0.1:8080")
    parser.add_argument("--azurite-url", default="http://127.0.0.1:10000")
    parser.add_argument("--dag-id", default="example_dataframe_pipeline")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for parsing and for the run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kube = Kube(args.context, args.namespace, args.release, dry_run=args.dry_run)
    try:
        if args.service:
            print(kube.service(args.service))
        elif args.print_login:
            print("user {} / password {}".format(*kube.login()))
        else:
            smoke(args, kube)
    except (SmokeError, ApiError) as err:
        print(f"kind smoke: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
