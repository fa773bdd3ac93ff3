"""Failure alerts: one webhook message (Slack's JSON: ``text`` + ``blocks``) for every failed task try and every
failed DAG run, with the DAG, the task, the try, the error and a link to the try's log.

Configuration, all optional (no ``webhook_url``: no alerts, nothing is sent):

    [alerts]
    webhook_url = https://hooks.slack.com/services/...   # a secret: the chart sets it from a Secret, as
                                                         # AIRFLOW__ALERTS__WEBHOOK_URL
    on_retry = True      # alert on a failed try that will be retried too, not only on the one that fails the task
    timeout = 5          # seconds an alert may take in all (at most 10)

Where each alert comes from (Airflow 3.3 calls these listener hooks):

- a task that fails or raises: its own process (the worker pod), for each try (up for retry or failed);
- a task Airflow finds dead (its pod gone before it reported, heartbeats lost): the scheduler;
- a DAG run that failed: the scheduler.

Nothing for a task or run marked failed by hand in the UI or the REST API (a person did it), nor per try for a task
process killed outright (OOM kill, SIGKILL: its supervisor records the failure and Airflow calls no listener there)
or a task failed for staying queued too long (the scheduler sets that state without one); the run's alert still
comes if the run fails. A webhook that is down or refuses the message is logged as a warning (with its host, never
the URL: a Slack webhook URL is a credential) and changes nothing else: the task's state, retries and callbacks are
Airflow's. The task process sends before it exits and waits at most ``timeout`` seconds; the scheduler queues its
alerts for a background thread so that a slow webhook never stalls scheduling. Loaded from ``[core] plugins_folder``
(the chart and the local stack set it to this folder).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from include import metrics

log = logging.getLogger(__name__)

SECTION = "alerts"
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 10.0  # well inside [core] task_success_overtime (20 s), after which a task's process is ended
QUEUE_CAPACITY = 100  # the scheduler's alerts waiting for the webhook
DRAIN_SECONDS = 15.0  # how long a stopping scheduler waits for its queued alerts
SLACK_TEXT_CHARS = 3000  # Slack refuses a section whose text is longer
ERROR_CHARS = 1500  # Slack cuts a section's text at 3,000 characters; the rest of the message needs room too
# The message Airflow's REST API gives a DAG run someone set to failed (api_fastapi/.../public/dag_run.py).
MARKED_BY_HAND = "state was manually set"


class AlertConfigError(ValueError):
    """The [alerts] section holds a value the alerts cannot work with."""


@dataclass(frozen=True)
class Settings:
    webhook_url: str
    on_retry: bool
    timeout: float

    @property
    def host(self) -> str:
        return urlsplit(self.webhook_url).hostname or "?"


def settings() -> Settings | None:
    """The [alerts] settings, or None when no webhook is configured."""
    from airflow.sdk.configuration import conf

    url = conf.get(SECTION, "webhook_url", fallback="").strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise AlertConfigError(
            f"[{SECTION}] webhook_url (AIRFLOW__ALERTS__WEBHOOK_URL) must be an http:// or https:// URL with a host; "
            f"it starts with {url[:8]!r}. Put the webhook's full URL in the Secret the chart's "
            "alerts.webhook.existingSecret names."
        )
    try:
        timeout = conf.getfloat(SECTION, "timeout", fallback=DEFAULT_TIMEOUT)
        on_retry = conf.getboolean(SECTION, "on_retry", fallback=True)
    except Exception as error:  # Airflow's AirflowConfigException names the key and the value
        raise AlertConfigError(f"[{SECTION}]: {error}") from error
    if not 0 < timeout <= MAX_TIMEOUT:
        raise AlertConfigError(
            f"[{SECTION}] timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds; it is {timeout}."
        )
    return Settings(url, on_retry, timeout)


def describe_error(error: str | BaseException | None) -> str:
    if error is None:
        return "(no error was reported)"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def escaped(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally (its control characters are &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def within_slack_limit(text: str) -> str:
    """Escaping can make a text up to five times longer: cut it to what Slack accepts, never inside an entity."""
    limit = SLACK_TEXT_CHARS - 10  # the code fence around it
    return text if len(text) <= limit else re.sub(r"&[a-z]*$", "", text[: limit - 1]) + "…"


def message(title: str, fields: dict[str, str], detail: str, link: tuple[str, str]) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the notification, and all a plain receiver needs) and ``blocks``."""
    label, url = link
    text = "\n".join([title, *(f"{name}: {value}" for name, value in fields.items()), detail, f"{label}: {url}"])
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{escaped(value)}"} for name, value in fields.items()],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{within_slack_limit(escaped(detail))}```"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{url}|{label}>"}},
        ],
    }


def state_of(task_instance: Any) -> str:
    return str(getattr(task_instance.state, "value", task_instance.state))


def task_failure_message(task_instance: Any, error: str | BaseException | None) -> dict[str, Any]:
    retrying = state_of(task_instance) == "up_for_retry"
    task = task_instance.task_id
    if task_instance.map_index is not None and task_instance.map_index >= 0:  # a mapped task's instance
        task += f"[{task_instance.map_index}]"
    fields = {
        "DAG": task_instance.dag_id,
        "Task": task,
        "Run": task_instance.run_id,
        "Try": f"{task_instance.try_number} of {task_instance.max_tries + 1}",
        "State": "up for retry" if retrying else "failed",
    }
    title = f"{'Task try failed, will retry' if retrying else 'Task failed'}: {task_instance.dag_id}.{task}"
    return message(title, fields, describe_error(error), ("Log", task_instance.log_url))


def dag_run_failure_message(dag_run: Any, reason: str) -> dict[str, Any]:
    """From the row the scheduler hands over, nothing more: a listener must not query the metadata DB in the
    scheduler's loop (its own session's commit breaks the scheduler's HA lock guard, and the scheduler exits)."""
    from airflow.sdk.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    fields = {"DAG": dag_run.dag_id, "Run": dag_run.run_id, "Reason": reason}
    started, ended = (f"{at:%Y-%m-%d %H:%M:%S %Z}" if at else "?" for at in (dag_run.start_date, dag_run.end_date))
    link = ("Run", f"{base_url}/dags/{dag_run.dag_id}/runs/{quote(dag_run.run_id)}")
    return message(f"DAG run failed: {dag_run.dag_id}", fields, f"Started {started}, failed {ended}", link)


def post(settings: Settings, payload: dict[str, Any], what: str) -> bool:
    """POST the message once; log the outcome. Never raises: an alert must not change what it reports on."""
    request = urllib.request.Request(
        settings.webhook_url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            log.info("Failure alert for %s sent to %s (HTTP %s)", what, settings.host, response.status)
            metrics.count("failure_alerts", outcome="sent")
            return True
    except urllib.error.HTTPError as refused:
        body = refused.read(300).decode(errors="replace")
        log.warning(
            "Failure alert for %s NOT delivered: %s answered HTTP %s: %s", what, settings.host, refused.code, body
        )
        metrics.count("failure_alerts", outcome="refused")
    except Exception as error:  # unreachable, timed out, TLS: the alert is lost, the task is not
        log.warning("Failure alert for %s NOT delivered to %s: %s", what, settings.host, error)
        metrics.count("failure_alerts", outcome="failed")
    return False


class BackgroundSender:
    """The scheduler's alerts, sent in order by one daemon thread so that scheduling never waits on a webhook. At most
    ``capacity`` wait (more are dropped with a warning: a webhook that hangs must not grow the scheduler's memory);
    at exit the process waits up to ``drain_seconds`` for the queue, never longer."""

    def __init__(self, capacity: int = QUEUE_CAPACITY, drain_seconds: float = DRAIN_SECONDS) -> None:
        self.queue: queue.Queue[tuple[Settings, dict[str, Any], str]] = queue.Queue(maxsize=capacity)
        self.drain_seconds = drain_seconds
        threading.Thread(target=self._run, name="failure-alerts", daemon=True).start()
        atexit.register(self.drain)

    def submit(self, settings: Settings, payload: dict[str, Any], what: str) -> None:
        try:
            self.queue.put_nowait((settings, payload, what))
        except queue.Full:
            log.warning(
                "Failure alert for %s NOT sent: the queue for %s is full (%d waiting)", what, settings.host,
                self.queue.maxsize,
            )  # fmt: skip
            metrics.count("failure_alerts", outcome="dropped")

    def drain(self) -> None:
        """Wait until every queued alert was sent or given up, or ``drain_seconds`` have passed."""
        deadline = time.monotonic() + self.drain_seconds
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks and (left := deadline - time.monotonic()) > 0:
                self.queue.all_tasks_done.wait(left)

    def _run(self) -> None:
        while True:
            settings, payload, what = self.queue.get()
            try:
                post(settings, payload, what)
            finally:
                self.queue.task_done()


@functools.cache
def background_sender() -> BackgroundSender:
    return BackgroundSender()


os.register_at_fork(after_in_child=background_sender.cache_clear)  # a forked child has no sender thread: its own


def send_within_timeout(settings: Settings, payload: dict[str, Any], what: str) -> None:
    """Send from the task's process and wait at most ``timeout`` in all (urllib's timeout bounds each socket step,
    not the call, and name resolution not at all): the task has reported its state, and its supervisor ends the
    process when [core] task_success_overtime (20 s by default) has passed."""
    sender = threading.Thread(target=post, args=(settings, payload, what), name="failure-alert", daemon=True)
    sender.start()
    sender.join(settings.timeout)
    if sender.is_alive():
        log.warning(
            "Failure alert for %s NOT delivered to %s: no answer within %s s", what, settings.host, settings.timeout
        )


def send(payload_of: Callable[[], dict[str, Any]], what: str, *, retrying: bool, background: bool) -> None:
    try:
        config = settings()
    except AlertConfigError as error:
        log.error("Failure alert for %s NOT sent: %s", what, error)
        return
    if config is None or (retrying and not config.on_retry):
        return
    if background:
        background_sender().submit(config, payload_of(), what)
    else:
        send_within_timeout(config, payload_of(), what)


def in_task_process(task_instance: Any) -> bool:
    """Is this the task's own process (the task runner loaded, the instance its own)? Never imports the task runner
    into the scheduler to find out."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return runner is not None and isinstance(task_instance, runner.RuntimeTaskInstance)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: str | BaseException | None) -> None:
    if previous_state is None:  # marked failed through the UI or the REST API
        return
    send(
        lambda: task_failure_message(task_instance, error),
        f"{task_instance.dag_id}.{task_instance.task_id} try {task_instance.try_number}",
        retrying=state_of(task_instance) == "up_for_retry",
        background=not in_task_process(task_instance),
    )


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    if MARKED_BY_HAND in msg:
        return
    what = f"DAG run {dag_run.dag_id} {dag_run.run_id}"
    send(lambda: dag_run_failure_message(dag_run, msg), what, retrying=False, background=True)


class FailureAlertsPlugin(AirflowPlugin):
    name = "failure_alerts"
    listeners = (sys.modules[__name__],)
