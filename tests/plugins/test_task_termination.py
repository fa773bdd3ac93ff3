"""include/plugins/task_termination.py: SIGTERM fails the task's try after Airflow's own handler has run.

The end-to-end proofs are in tests/e2e (a LocalExecutor task process sent SIGTERM) and tests/cluster/test_faults.py
(a worker pod deleted); these check the handler chain with real signals, and that Airflow loads the listener from the
plugins folder the chart and the local stack configure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from include.plugins.task_termination import TaskTerminated, fail_on_sigterm
from scripts.paths import ROOT

PLUGINS_FOLDER = ROOT / "include" / "plugins"


@pytest.fixture
def airflow_handler() -> Iterator[list[int]]:
    """Stands where the task runner's handler (which calls on_kill) stands; records each call."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_runs_airflows_handler_then_raises_task_terminated(airflow_handler: list[int]) -> None:
    fail_on_sigterm()
    with pytest.raises(TaskTerminated, match="received SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
    assert airflow_handler == [signal.SIGTERM]


def task_code_catching_exception() -> None:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except Exception:  # what task code often does
        pytest.fail("an `except Exception` caught the termination")


def test_task_code_catching_exception_does_not_swallow_it(airflow_handler: list[int]) -> None:
    fail_on_sigterm()
    with pytest.raises(TaskTerminated):
        task_code_catching_exception()


def test_a_second_sigterm_while_the_try_fails_does_not_raise_again(airflow_handler: list[int]) -> None:
    """The pod's SIGTERM reaches the task twice (dumb-init's process group and the supervisor's forward): the
    failure being reported must not be interrupted by a second exception."""
    fail_on_sigterm()
    with pytest.raises(TaskTerminated):
        os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
    assert airflow_handler == [signal.SIGTERM, signal.SIGTERM]


def test_airflow_loads_the_listeners_from_the_configured_plugins_folder() -> None:
    probe = (
        "from airflow.sdk.listener import get_listener_manager\n"
        "print(sorted(getattr(p, '__name__', '') for p in get_listener_manager().pm.get_plugins()))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listeners = result.stdout.splitlines()[-1]
    for plugin in ("task_termination", "failure_alerts"):
        assert plugin in listeners, result.stdout + result.stderr[-3000:]
