"""include/plugins/failure_alerts.py with real Airflow: `airflow dags test` runs alerts_fixture (tests/plugins/dags)
in a fresh process with the plugins folder the chart and the local stack configure, and the alerts go to a real HTTP
receiver in this process (tests/support/webhook_receiver.py).

The fixture's run: always_fails fails both tries, fails_once fails its first try and succeeds on the retry, succeeds
succeeds; the run fails. tests/cluster/test_failure_alerting.py proves the chart's wiring (the Secret, the worker pods,
the scheduler) on the local cluster.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.plugins import failure_alerts
from scripts.airflow_api import wait_for
from scripts.devstack.services import free_port
from scripts.devstack.stack import ALERTS_WEBHOOK_ENV
from scripts.paths import ROOT
from tests.plugins.dags.alerts_fixture import ALERT_TITLES, ERROR, STATES
from tests.support.airflow import AIRFLOW_BIN
from tests.support.statsd_receiver import StatsdReceiver
from tests.support.webhook_receiver import Receiver, titles

pytestmark = pytest.mark.slow

DAG_ID = "alerts_fixture"
DAGS = Path(__file__).parent / "dags"
BASE_URL = "https://airflow.example.com"


@dataclass
class Run:
    run_id: str
    output: str
    states: dict[str, str]  # task_id -> final state


def run_fixture(db: Path, statsd: StatsdReceiver | None = None, **alerts: str) -> Run:
    """One `airflow dags test alerts_fixture` with ``[alerts]`` options set from ``alerts`` (as env variables), its
    metrics sent to ``statsd``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__ALERTS__")},  # a user's own webhook
        **(statsd.env() if statsd else {}),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "include" / "plugins"),
        "AIRFLOW__API__BASE_URL": BASE_URL,
        **{f"AIRFLOW__ALERTS__{key.upper()}": value for key, value in alerts.items()},
    }
    before = runs(db)
    result = subprocess.run(
        [str(AIRFLOW_BIN), "dags", "test", DAG_ID], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    (run_id,) = runs(db) - before or pytest.fail(f"airflow dags test made no run:\n{output[-4000:]}")
    with sqlite3.connect(db) as conn:
        query = "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
        rows = conn.execute(query, (DAG_ID, run_id))
        return Run(run_id, output, dict(rows))


def runs(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {run for (run,) in conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (DAG_ID,))}


@pytest.fixture(scope="module")
def alerted(airflow_db: Path) -> tuple[Run, list[dict[str, Any]], StatsdReceiver]:
    statsd = StatsdReceiver()
    try:
        with Receiver() as receiver:
            run = run_fixture(airflow_db, statsd, webhook_url=receiver.url)
            return run, receiver.received, statsd
    finally:
        statsd.close()


def test_each_failed_try_and_the_failed_run_send_one_alert(alerted):
    run, messages, _ = alerted
    assert run.states == STATES, run.output[-4000:]
    assert titles(messages) == ALERT_TITLES, run.output[-4000:]


def test_each_alert_sent_is_counted(alerted):
    _, messages, statsd = alerted
    assert statsd.total("failure_alerts", outcome="sent") == len(messages)
    assert statsd.total("failure_alerts") == len(messages)


def test_a_task_alert_names_the_dag_task_try_error_and_log(alerted):
    run, messages, _ = alerted
    (final,) = (m for m in messages if m["text"].startswith("Task failed"))
    text = final["text"].splitlines()
    assert text[1:6] == [
        "DAG: alerts_fixture",
        "Task: always_fails",
        f"Run: {run.run_id}",
        "Try: 2 of 2",
        "State: failed",
    ]
    assert f"ValueError: {ERROR}" in text
    log = f"{BASE_URL}/dags/alerts_fixture/runs/{failure_alerts.quote(run.run_id)}/tasks/always_fails?try_number=2"
    assert text[-1] == f"Log: {log}"
    # Slack's blocks: the same facts, the error escaped for mrkdwn, the log as a link.
    header, fields, detail, link = final["blocks"]
    assert header["text"]["text"] == "Task failed: alerts_fixture.always_fails"
    assert {"type": "mrkdwn", "text": "*Try*\n2 of 2"} in fields["fields"]
    assert detail["text"]["text"] == "```ValueError: no rows in &lt;input&gt; &amp; nothing to load```"
    assert link["text"]["text"] == f"<{log}|Log>"


def test_the_run_alert_names_the_reason_and_links_the_run(alerted):
    run, messages, _ = alerted
    (alert,) = (m for m in messages if m["text"].startswith("DAG run failed"))
    text = alert["text"].splitlines()
    assert text[1:4] == ["DAG: alerts_fixture", f"Run: {run.run_id}", "Reason: task_failure"]
    assert text[4].startswith("Started 20"), text
    assert text[-1] == f"Run: {BASE_URL}/dags/alerts_fixture/runs/{failure_alerts.quote(run.run_id)}"


def test_the_run_alert_makes_no_commit_inside_the_schedulers_critical_section(alerted, monkeypatch):
    """The scheduler calls on_dag_run_failed holding its HA lock: Airflow's guard raises on any commit of the
    scheduler's (thread-scoped) session, and a listener that queried the DB through Airflow's session helpers
    committed it, detached the run and crashed the scheduler on the local cluster. Same guard, same session here."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    run, _, _ = alerted
    with Receiver() as receiver, create_session() as session:
        monkeypatch.setenv(ALERTS_WEBHOOK_ENV, receiver.url)
        dag_run = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run.run_id).one()
        with prohibit_commit(session) as guard:
            failure_alerts.on_dag_run_failed(dag_run, "task_failure")
            assert dag_run.state == "failed"  # still attached and loaded
            guard.commit()
        failure_alerts.background_sender().drain()  # the scheduler's sender thread, as at exit
        assert titles(receiver.received) == ["DAG run failed: alerts_fixture"]


def test_with_on_retry_off_only_the_tries_that_fail_the_task_alert(airflow_db):
    with Receiver() as receiver:
        run = run_fixture(airflow_db, webhook_url=receiver.url, on_retry="False")
        messages = receiver.received
    assert run.states == STATES, run.output[-4000:]
    assert titles(messages) == ["DAG run failed: alerts_fixture", "Task failed: alerts_fixture.always_fails"]


@pytest.mark.parametrize(
    ("case", "logged", "counted"),
    [
        ("nothing listens", "NOT delivered to 127.0.0.1", "failed"),
        ("HTTP 500", "127.0.0.1 answered HTTP 500: recorded", "refused"),
        ("too slow", "NOT delivered to 127.0.0.1", "failed"),
        ("not a URL", "must be an http:// or https:// URL", None),
    ],
)
def test_a_webhook_that_fails_changes_no_task_state(airflow_db, case, logged, counted):
    statsd = StatsdReceiver()
    try:
        if case == "nothing listens":
            run = run_fixture(airflow_db, statsd, webhook_url=f"http://127.0.0.1:{free_port()}/hook")
        elif case == "not a URL":
            run = run_fixture(airflow_db, statsd, webhook_url="hooks.example.com/services/T0/B0")
        else:
            status, delay = (500, 0.0) if case == "HTTP 500" else (200, 3.0)
            with Receiver(status=status, delay=delay) as receiver:
                run = run_fixture(airflow_db, statsd, webhook_url=receiver.url, timeout="1")
    finally:
        statsd.close()
    assert run.states == STATES, run.output[-4000:]
    assert logged in run.output, run.output[-4000:]
    assert "hooks.example.com/services" not in run.output  # the URL is a credential: never logged
    # Every alert attempted, counted as the failure it met; a URL that is not one attempts nothing.
    assert statsd.total("failure_alerts") == statsd.total("failure_alerts", outcome=counted or "none")
    assert statsd.total("failure_alerts") == (len(ALERT_TITLES) if counted else 0)


def test_no_webhook_url_sends_nothing_and_logs_nothing(airflow_db):
    run = run_fixture(airflow_db)
    assert run.states == STATES
    assert "Failure alert" not in run.output


def test_a_mapped_instance_is_named_with_its_index():
    class TaskInstance:
        dag_id, task_id, run_id, map_index = "d", "t", "r", 0
        state, try_number, max_tries, log_url = "failed", 1, 0, "http://x/log"

    message = failure_alerts.task_failure_message(TaskInstance(), "boom")
    assert message["text"].splitlines()[:3] == ["Task failed: d.t[0]", "DAG: d", "Task: t[0]"]


def test_a_long_error_is_cut_to_what_slack_shows():
    text = failure_alerts.describe_error(RuntimeError("x" * 10_000))
    assert len(text) == failure_alerts.ERROR_CHARS
    assert text.startswith("RuntimeError: xxx")
    assert text.endswith("…")


def test_airflow_still_marks_a_hand_set_run_failure_with_the_phrase_the_plugin_skips():
    """Airflow's REST API calls on_dag_run_failed when a person sets a run to failed; the plugin recognises that by
    its message. If Airflow rewords it, this fails (and the plugin would alert on hand-set failures)."""
    from airflow.api_fastapi.core_api.services.public import dag_run

    assert failure_alerts.MARKED_BY_HAND in Path(dag_run.__file__).read_text()


def test_an_error_full_of_markup_stays_within_slacks_limit_once_escaped():
    detail = failure_alerts.describe_error("<&>" * 1000)  # cut to 1,500 characters, then escaped to ~6,000
    message = failure_alerts.message("t", {"DAG": "d"}, detail, ("Log", "http://x/log"))
    shown = message["blocks"][2]["text"]["text"]
    assert len(shown) <= failure_alerts.SLACK_TEXT_CHARS
    assert shown.startswith("```&lt;&amp;&gt;")
    assert shown.endswith("…```")
    assert "&" not in shown.rsplit(";", 1)[-1], "cut inside an entity"


def test_the_schedulers_queue_is_bounded_and_drains_at_exit(caplog):
    """A webhook that hangs must not grow the scheduler's memory: beyond the queue's capacity alerts are dropped with
    a warning; what was queued is still sent when the process drains the queue at exit."""
    with Receiver(delay=5) as receiver:  # records each alert, then keeps the sender waiting 5 s
        config = failure_alerts.Settings(receiver.url, on_retry=True, timeout=10)
        sender = failure_alerts.BackgroundSender(capacity=1, drain_seconds=30)
        sender.submit(config, {"text": "alert 0"}, "alert 0")
        wait_for("the sender to be busy with alert 0", lambda: receiver.received, timeout=10, interval=0.05)
        with caplog.at_level("WARNING", logger=failure_alerts.__name__):
            sender.submit(config, {"text": "alert 1"}, "alert 1")  # waits in the queue
            sender.submit(config, {"text": "alert 2"}, "alert 2")  # the queue is full
        sender.drain()
        sent = [message["text"] for message in receiver.received]
    assert sent == ["alert 0", "alert 1"]
    assert "Failure alert for alert 2 NOT sent: the queue for 127.0.0.1 is full (1 waiting)" in caplog.text
