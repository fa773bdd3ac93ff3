"""A task whose process gets SIGTERM fails its try, so Airflow records the failure and uploads the try's log.

Kubernetes stops a worker pod (deleted, evicted, node drained, spot VM reclaimed) with SIGTERM and kills it with
SIGKILL when the grace period ends. Airflow 3.3's task runner answers SIGTERM by calling the operator's ``on_kill()``
and then lets the task carry on (apache/airflow#73006): a task with no ``on_kill`` of its own, a Python ``@task``
among them, runs until the SIGKILL, and the try dies before its log is uploaded to Blob.

This listener runs in the task process when the task starts, after Airflow has installed its SIGTERM handler. It
keeps that handler (``on_kill()`` still runs first) and then raises :class:`TaskTerminated` in the task, which Airflow
handles as a failure of this try: the retry policy and failure callbacks apply, and the supervisor uploads the log
before the pod is gone. Loaded from ``[core] plugins_folder`` (the chart and the local stack set it to this folder).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin


class TaskTerminated(BaseException):
    """The task process received SIGTERM. A BaseException, like Airflow's own termination error, so that an
    ``except Exception`` in task code cannot swallow it; unlike that error it leaves the retry policy in force."""


def fail_on_sigterm() -> None:
    """Chain SIGTERM: Airflow's handler first, then TaskTerminated raised in the task (once: a later SIGTERM, which
    arrives while the failure is reported, runs Airflow's handler only)."""
    airflow_handler = signal.getsignal(signal.SIGTERM)
    task_pid = os.getpid()
    raised = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        if callable(airflow_handler):
            airflow_handler(signum, frame)
        if os.getpid() != task_pid or raised.is_set():  # a process the task forked, or the failure is under way
            return
        raised.set()
        raise TaskTerminated(
            "The task process received SIGTERM (its worker pod was deleted or evicted, or the worker is shutting "
            "down); on_kill() has run. This try fails so that its log is kept and the task can be retried."
        )

    signal.signal(signal.SIGTERM, on_sigterm)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    # Only in the task process itself (a signal handler can only be set from the main thread).
    if isinstance(task_instance, RuntimeTaskInstance) and threading.current_thread() is threading.main_thread():
        fail_on_sigterm()


class TaskTerminationPlugin(AirflowPlugin):
    name = "task_termination"
    listeners = (sys.modules[__name__],)
