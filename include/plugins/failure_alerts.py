"""Failure alerts: one webhook message (Slack's JSON: ``text`` + ``blocks``) for every failed task try and every
failed DAG run, with the DAG, the task, the try, the error and a link to the try's log.

Configuration, all optional (no ``webhook_url``: no alerts, nothing is sent):

    [alerts]
    webhook_url = https://hooks.slack.com/services/...   # a secret: the chart sets it from a Secret, as
                                                         # AIRFLOW__ALERTS__WEBHOOK_URL
    on_retry = True      # alert on a failed try that will be retried too, not only on the one that fails the task
    timeout = 5          # seconds one webhook call may take

Where each alert comes from (Airflow 3.3 calls these listener hooks):

- a task that fails or raises: its own process (the worker pod), for each try (up for retry or failed);
- a task Airflow finds dead (its pod gone before it reported, heartbeats lost, never started): the scheduler;
- a DAG run that failed: the scheduler.

A task or run marked failed by hand in the UI or the REST API sends nothing: a person did it. A task process killed
outright (OOM kill, SIGKILL) sends no per-try alert: its supervisor records the failure and Airflow calls no listener
there; the run's alert still comes if the run fails. A webhook that is down or
refuses the message is logged as a warning (with its host, never the URL: a Slack webhook URL is a credential) and
changes nothing else: the task's state, retries and callbacks are Airflow's. The task process sends before it exits
(at most ``timeout`` seconds); the scheduler hands the call to a background thread so that a slow webhook never stalls
scheduling. Loaded from ``[core] plugins_folder`` (the chart and the local stack set it to this folder).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

SECTION = "alerts"
DEFAULT_TIMEOUT = 5.0
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
    if not 0 < timeout <= 60:
        raise AlertConfigError(f"[{SECTION}] timeout must be between 0 and 60 seconds; it is {timeout}.")
    return Settings(url, on_retry, timeout)


def describe_error(error: str | BaseException | None) -> str:
    if error is None:
        return "(no error was reported)"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def escaped(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally (its control characters are &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{escaped(detail)}```"}},
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
            return True
    except urllib.error.HTTPError as refused:
        body = refused.read(300).decode(errors="replace")
        log.warning(
            "Failure alert for %s NOT delivered: %s answered HTTP %s: %s", what, settings.host, refused.code, body
        )
    except Exception as error:  # unreachable, timed out, TLS: the alert is lost, the task is not
        log.warning("Failure alert for %s NOT delivered to %s: %s", what, settings.host, error)
    return False


@functools.cache
def background_sender() -> ThreadPoolExecutor:
    """One thread per process (the scheduler's) that sends in order; Python joins it at exit, so a queued alert is
    still sent when the scheduler stops."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="failure-alerts")


def send(payload_of: Callable[[], dict[str, Any]], what: str, *, retrying: bool, background: bool) -> None:
    try:
        config = settings()
    except AlertConfigError as error:
        log.error("Failure alert for %s NOT sent: %s", what, error)
        return
    if config is None or (retrying and not config.on_retry):
        return
    payload = payload_of()
    if not background:
        post(config, payload, what)
        return
    try:
        background_sender().submit(post, config, payload, what)
    except RuntimeError:  # the interpreter is shutting down: no new threads, send it now
        post(config, payload, what)


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
