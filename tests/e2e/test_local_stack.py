"""End to end: the local stack (make up) with PostgreSQL, a DAG pushed to its Git repository, the REST API, Blob.

One stack for the module (started detached in a temp state dir on free ports, stopped by the last test). The
tests run in file order and build on each other: push -> registered -> run -> XComs and logs in Blob -> clear and
re-run purges -> retention sweep -> stop leaves no process behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from azure.storage.blob import BlobServiceClient

from include.azblob_xcom_backend import decode_table, metadata_ids, parse_uri
from scripts import airflow_api
from scripts.devstack.services import azurite_connection_string, free_port
from scripts.devstack.stack import stack_processes
from scripts.paths import ROOT
from tests.support.browser import (
    browser_errors,
    chromium,
    click_text,
    sign_in,
    table_cells,
    wait_for_element,
    wait_for_text,
)

pytestmark = pytest.mark.slow

DAG_ID = "e2e_blob_pipeline"
E2E_DAGS = Path(__file__).parent / "dags"
LOCAL_STACK = ROOT / "scripts" / "local-stack"
REGISTER_BOUND_S = 120  # GitDagBundle refresh (10 s) + dag-processor parse loop + slack for a loaded CI machine
LOG_UPLOAD_BOUND_S = 60  # the supervisor uploads a task's log after the task has reported its state
RUN_BOUND_S = 300
EXAMPLE_RUNS = "/api/v2/dags/example_dataframe_pipeline/dagRuns"
SCREENSHOTS = ROOT / ".local" / "screenshots"  # ignored; docs/images/xcom-preview.png is one of these


@dataclass
class Stack:
    state: Path
    api_port: int
    azurite_port: int
    api: airflow_api.Api = field(init=False)
    blobs: BlobServiceClient = field(init=False)
    facts: dict = field(default_factory=dict)  # what earlier tests found, for later ones

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(LOCAL_STACK), "--state-dir", str(self.state), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def connect(self) -> None:
        password = json.loads((self.state / "secrets.json").read_text())["admin_password"]
        self.api = airflow_api.Api(f"http://127.0.0.1:{self.api_port}")
        self.api.authenticate("admin", password)
        self.blobs = BlobServiceClient.from_connection_string(azurite_connection_string("127.0.0.1", self.azurite_port))

    def run_path(self, run_id: str) -> str:
        return airflow_api.run_path(DAG_ID, run_id)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_BOUND_S) -> str:
        return airflow_api.wait_for_run(self.api, dag_id, run_id, timeout=timeout, interval=1)

    def xcom(self, run_id: str, task_id: str, key: str = "return_value"):
        path = f"{self.run_path(run_id)}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api.call("GET", path)["value"]

    def log_text(self, run_id: str, task_id: str, try_number: int) -> str:
        path = f"{self.run_path(run_id)}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        return json.dumps(self.api.call("GET", path)["content"])

    def download(self, path: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}")
        request.add_header("Authorization", f"Bearer {self.api.token}")
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read()

    def blob_exists(self, uri: str) -> bool:
        container, name = parse_uri(uri)
        return self.blobs.get_blob_client(container, name).exists()

    def processes(self) -> list[tuple[int, str]]:
        return stack_processes(self.state)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Not under pytest's tmp dirs: those are root-only (0700), and PostgreSQL runs as the postgres user under root.
    state = Path(tempfile.mkdtemp(prefix="local-stack-e2e-"))
    state.chmod(0o755)
    stack = Stack(state=state, api_port=free_port(), azurite_port=free_port())
    started = stack.cli(
        "up", "--detach", "--db", "postgres",
        "--api-port", str(stack.api_port), "--azurite-port", str(stack.azurite_port),
        "--postgres-port", str(free_port()),
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        stack.connect()
        yield stack
    finally:
        stack.cli("down")
        shutil.rmtree(state, ignore_errors=True)


def test_stack_starts_with_postgres_and_reports_every_component_healthy(stack):
    health = stack.api.call("GET", "/api/v2/monitor/health")
    assert {c: health[c]["status"] for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy",
    }  # fmt: skip
    pids = json.loads((stack.state / "run" / "pids.json").read_text())["pids"]
    assert set(pids) == {"azurite", "postgres", "api-server", "scheduler", "dag-processor", "triggerer"}


def test_running_up_again_while_the_stack_runs_changes_nothing(stack):
    before = json.loads((stack.state / "run" / "pids.json").read_text())["pids"]
    again = stack.cli("up", "--detach", "--api-port", str(stack.api_port))
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert json.loads((stack.state / "run" / "pids.json").read_text())["pids"] == before


def test_a_dag_committed_to_the_git_repository_is_registered_within_the_bound(stack, tmp_path):
    source = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", source)
    for dag_file in E2E_DAGS.glob("*.py"):
        shutil.copy(dag_file, source)
    pushed_at = time.monotonic()
    pushed = stack.cli("push-dags", "--source", str(source))
    assert pushed.returncode == 0, pushed.stderr

    registered = lambda: stack.api.dag_exists(DAG_ID)  # noqa: E731
    airflow_api.wait_for(f"{DAG_ID} to be registered", registered, timeout=REGISTER_BOUND_S, interval=1)
    stack.facts["register_seconds"] = time.monotonic() - pushed_at


def test_the_triggered_dag_succeeds_including_a_retried_task(stack):
    stack.api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run_id = stack.api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None})["dag_run_id"]
    stack.facts["run_id"] = run_id
    assert stack.wait_run(DAG_ID, run_id) == "success"
    flaky = stack.api.call("GET", f"{stack.run_path(run_id)}/taskInstances/flaky")
    assert (flaky["state"], flaky["try_number"]) == ("success", 2)


def test_the_xcom_row_holds_a_reference_to_a_blob_that_records_the_ids(stack):
    run_id = stack.facts["run_id"]
    ref = stack.xcom(run_id, "extract")
    assert (ref["format"], ref["rows"], ref["columns"]) == ("parquet", 50_000, 2)
    assert stack.blob_exists(ref["uri"])
    container, name = parse_uri(ref["uri"])
    metadata = stack.blobs.get_blob_client(container, name).get_blob_properties().metadata
    assert metadata_ids(metadata) == {
        "dag_id": DAG_ID, "run_id": run_id, "task_id": "extract", "map_index": "-1", "key": "return_value",
    }  # fmt: skip
    assert stack.xcom(run_id, "check") == 50_000  # small values stay inline
    stack.facts["extract_uri"] = ref["uri"]


def test_task_logs_are_in_blob_and_served_by_the_api_after_local_files_are_gone(stack):
    run_id = stack.facts["run_id"]
    logs = stack.blobs.get_container_client("airflow-logs")
    prefix = f"logs/dag_id={DAG_ID}/run_id={run_id}/"
    expected = {
        "task_id=extract/attempt=1.log", "task_id=check/attempt=1.log", "task_id=flaky/attempt=1.log",
        "task_id=flaky/attempt=2.log",
    }  # fmt: skip

    def uploaded() -> set[str]:
        return {b.name.removeprefix(prefix) for b in logs.list_blobs(name_starts_with=prefix)}

    # Airflow marks a task done (and with the last one the run) before the task's supervisor uploads its log, so
    # the last log lands in Blob a moment after the run succeeded: wait for it, within a bound.
    airflow_api.wait_for(
        "every task log in Blob", lambda: uploaded() >= expected, timeout=LOG_UPLOAD_BOUND_S, interval=0.5
    )
    local = stack.state / "airflow" / "logs" / f"dag_id={DAG_ID}"
    assert local.exists()
    shutil.rmtree(local)
    assert "e2e-marker check rows=50000 dtype=category" in stack.log_text(run_id, "check", 1)


def test_a_task_that_fails_once_keeps_both_attempts_logs(stack):
    run_id = stack.facts["run_id"]
    first, second = stack.log_text(run_id, "flaky", 1), stack.log_text(run_id, "flaky", 2)
    assert "e2e-marker flaky attempt 1" in first
    assert "the first attempt fails on purpose" in first
    assert "e2e-marker flaky attempt 2" in second


def test_a_task_process_sent_sigterm_fails_its_try_keeps_its_log_and_the_retry_succeeds(stack):
    """As when a worker pod is deleted: include/plugins/task_termination.py turns the SIGTERM into a failed try."""
    dag, variable = "e2e_terminated_task", "e2e_terminated_pid"
    airflow_api.wait_for(f"{dag} to be registered", lambda: stack.api.dag_exists(dag), timeout=REGISTER_BOUND_S)
    run_id = airflow_api.trigger_dag(stack.api, dag)

    def task_pid() -> int | None:
        try:
            recorded_run, pid = stack.api.call("GET", f"/api/v2/variables/{variable}")["value"].split()
        except airflow_api.NotFound:
            return None
        return int(pid) if recorded_run == run_id else None

    os.kill(airflow_api.wait_for("attempt 1 to record its process id", task_pid, timeout=RUN_BOUND_S), signal.SIGTERM)

    assert stack.wait_run(dag, run_id) == "success"
    task = stack.api.call("GET", f"{airflow_api.run_path(dag, run_id)}/taskInstances/interrupted")
    assert (task["state"], task["try_number"]) == ("success", 2)
    logs = stack.blobs.get_container_client("airflow-logs")
    first = f"logs/dag_id={dag}/run_id={run_id}/task_id=interrupted/attempt=1.log"
    airflow_api.wait_for("attempt 1's log in Blob", logs.get_blob_client(first).exists, timeout=LOG_UPLOAD_BOUND_S)
    text = logs.download_blob(first).readall().decode()
    assert "e2e-marker interrupted attempt 1" in text
    assert "TaskTerminated" in text
    assert "received SIGTERM" in text
    assert "swallowed" not in text


def test_clearing_and_rerunning_a_task_purges_its_old_xcom_blob(stack):
    run_id, old_uri = stack.facts["run_id"], stack.facts["extract_uri"]
    body = {"dry_run": False, "dag_run_id": run_id, "task_ids": ["extract"], "only_failed": False,
            "include_downstream": False, "reset_dag_runs": True}  # fmt: skip
    stack.api.call("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", body)

    def rerun_done() -> bool:
        ti = stack.api.call("GET", f"{stack.run_path(run_id)}/taskInstances/extract")
        return ti["try_number"] == 2 and ti["state"] == "success"

    airflow_api.wait_for("extract to run again", rerun_done, timeout=RUN_BOUND_S, interval=1)
    new_uri = stack.xcom(run_id, "extract")["uri"]
    assert new_uri != old_uri
    assert stack.blob_exists(new_uri)
    assert not stack.blob_exists(old_uri), "the first run's XCom blob must be purged when the task re-runs"
    stack.facts["extract_uri"] = new_uri


def test_the_maintenance_dag_removes_an_orphan_blob_and_keeps_live_ones(stack):
    orphan = (
        f"dag_id={DAG_ID}/run_id=deleted-run/task_id=extract/map_index=-1/key=return_value/{uuid.uuid4().hex}.parquet"
    )
    container = stack.blobs.get_container_client("airflow-xcom")
    container.upload_blob(
        orphan,
        b"orphaned by airflow db clean",
        metadata={"dag_id": DAG_ID, "run_id": "deleted-run", "task_id": "extract", "map_index": "-1",
                  "key": "return_value"},
    )  # fmt: skip
    dag = "maintenance_blob_retention"
    stack.api.call("PATCH", f"/api/v2/dags/{dag}", {"is_paused": False})
    conf = {"xcom_retention_days": 0, "log_retention_days": 3650}
    run_id = stack.api.call("POST", f"/api/v2/dags/{dag}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]
    assert stack.wait_run(dag, run_id) == "success"
    assert not container.get_blob_client(orphan).exists()
    assert stack.blob_exists(stack.facts["extract_uri"]), "a blob referenced by a live XCom row must stay"


def test_demo_runs_the_example_and_shows_states_references_and_blobs(stack):
    demo = stack.cli("demo", timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for task_id in ("extract", "transform", "load"):
        assert f"task {task_id}: success" in out
    assert '"azblob_xcom_ref": 1' in out
    assert '"format": "parquet"' in out
    assert "blob airflow-xcom/dag_id=example_dataframe_pipeline/" in out
    assert "blob airflow-logs/logs/dag_id=example_dataframe_pipeline/" in out
    assert "attempt=1.log" in out


def test_the_api_server_previews_the_examples_xcoms_and_streams_the_blob(stack):
    """include/plugins/xcom_preview.py in the stack's api-server: the demo's run of example_dataframe_pipeline."""
    runs = stack.api.call("GET", f"{EXAMPLE_RUNS}?order_by=-run_after&limit=1")
    ids = f"dag_id=example_dataframe_pipeline&run_id={quote(runs['dag_runs'][0]['dag_run_id'])}"
    extract = stack.api.call("GET", f"/xcom-preview/api/preview?{ids}&task_id=extract&rows=5")
    assert (extract["storage"], extract["kind"], extract["total_rows"]) == ("blob", "table", 200_000)
    # The first rows and dtypes equal the stored DataFrame's, downloaded whole through the same app, as stored.
    stored = stack.download(f"/xcom-preview/api/download?{ids}&task_id=extract")
    assert hashlib.sha256(stored).hexdigest() == extract["reference"]["sha256"]
    orders = decode_table(bytearray(stored), "pandas.DataFrame")
    assert [column["name"] for column in extract["schema"]] == ["order_id", "city", "amount", "coupon", "ordered_at"]
    assert [column["dtype"] for column in extract["schema"]] == [str(dtype) for dtype in orders.dtypes]
    head = orders.head(5)
    rows = zip(head.index, head.itertuples(index=False), strict=True)
    assert extract["rows"] == [[str(i), *map(str, row)] for i, row in rows]
    csv = stack.download(f"/xcom-preview/api/download?{ids}&task_id=extract&as=csv").decode()
    assert csv.splitlines()[0] == ",order_id,city,amount,coupon,ordered_at"
    assert len(csv.splitlines()) == 200_001
    transform = stack.api.call("GET", f"/xcom-preview/api/preview?{ids}&task_id=transform")
    assert (transform["storage"], transform["kind"]) == ("inline", "table")
    assert stack.api.call("GET", f"/xcom-preview/api/verify?{ids}&task_id=extract")["ok"] is True
    # The UI's tab: the link as the UI fills it for a task that is not mapped.
    page = stack.download(f"/xcom-preview/view?{ids}&task_id=extract&map_index=%7BMAP_INDEX%7D").decode()
    assert "First 100 of 200,000 rows" in page
    assert f"<td>ordered_at</td><td>{orders['ordered_at'].dtype}</td>" in page
    plugins = stack.api.call("GET", "/api/v2/plugins")["plugins"]
    (views,) = [plugin["external_views"] for plugin in plugins if plugin["name"] == "xcom_preview"]
    assert [(view["destination"], view["url_route"]) for view in views] == [("task_instance", "xcom-preview")]


def test_the_xcom_preview_answers_only_a_signed_in_caller(stack):
    url = f"http://127.0.0.1:{stack.api_port}/xcom-preview/api/preview?dag_id=example_dataframe_pipeline&run_id=x"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{url}&task_id=extract", timeout=30)
    assert anonymous.value.code == 401
    with pytest.raises(airflow_api.NotFound, match=r"No XCom 'return_value' of example_dataframe_pipeline\.extract"):
        stack.api.call("GET", url.removeprefix(f"http://127.0.0.1:{stack.api_port}") + "&task_id=extract")


def test_a_browser_sees_the_transform_tasks_rows_in_the_preview_tab_and_the_extract_log(stack, tmp_path):
    """Chromium, signed in through the UI's own form: the task instance page's "XCom preview" tab (the plugin's
    external view, an iframe) shows transform's aggregate exactly as pandas computes it from extract's blob, then
    the extract task's log, which the api-server reads from Blob. No console errors on the way."""
    run_id = stack.api.call("GET", f"{EXAMPLE_RUNS}?order_by=-run_after&limit=1")["dag_runs"][0]["dag_run_id"]
    ids = f"dag_id=example_dataframe_pipeline&run_id={quote(run_id)}"
    blob = stack.download(f"/xcom-preview/api/download?{ids}&task_id=extract")
    orders = decode_table(bytearray(blob), "pandas.DataFrame")
    orders["hour"] = orders["ordered_at"].dt.floor("h")  # transform's code (dags/example_dataframe_pipeline.py)
    expected = orders.groupby(["city", "hour"], observed=True).agg(
        orders=("order_id", "count"), revenue=("amount", "sum"), coupons=("coupon", "count")
    )
    head = expected.head(100)
    base = f"http://127.0.0.1:{stack.api_port}"
    password = json.loads((stack.state / "secrets.json").read_text())["admin_password"]
    with chromium(tmp_path / "profile") as browser:
        sign_in(browser, base, "admin", password)
        browser.get(f"{base}/dags/example_dataframe_pipeline/runs/{quote(run_id)}/tasks/transform/plugin/xcom-preview")
        browser.switch_to.frame(wait_for_element(browser, "iframe"))
        table = wait_for_element(browser, "table#rows")
        shown = table_cells(table)
        dtypes = table_cells(browser.find_element("xpath", "//h2[text()='Schema']/following-sibling::table[1]"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "xcom-preview.png"))
        browser.switch_to.default_content()
        errors = browser_errors(browser)
        browser.get(f"{base}/dags/example_dataframe_pipeline/runs/{quote(run_id)}/tasks/extract")
        wait_for_text(browser, "[200000 rows x 5 columns]")  # the task's log line of the frame it returned
        click_text(browser, "Log message source details")
        wait_for_text(browser, f"/airflow-logs/logs/dag_id=example_dataframe_pipeline/run_id={run_id}/task_id=extract/")
        errors += browser_errors(browser)
    rows = zip(head.index, head.itertuples(index=False), strict=True)
    assert shown == [[*map(str, index), *map(str, values)] for index, values in rows]
    assert dtypes == [[name, str(dtype)] for name, dtype in head.dtypes.items()]
    assert not errors


def test_stopping_the_stack_leaves_no_process_behind(stack):
    assert stack.processes(), "the stack should be running before it is stopped"
    stopped = stack.cli("down")
    assert stopped.returncode == 0, stopped.stderr
    assert "api-server" in stopped.stdout
    assert "postgres" in stopped.stdout
    deadline = time.monotonic() + 30
    while stack.processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.processes() == []
