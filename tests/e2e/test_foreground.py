"""`make up` in the foreground: it prints the URL and login, and Ctrl-C stops every process it started."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from scripts.devstack.services import free_port
from scripts.devstack.stack import stack_processes
from scripts.paths import ROOT

pytestmark = pytest.mark.slow


def test_ctrl_c_in_the_foreground_stops_everything_and_leaves_no_process():
    state = Path(tempfile.mkdtemp(prefix="local-stack-fg-"))
    argv = [str(ROOT / "scripts" / "local-stack"), "--state-dir", str(state), "up",
            "--api-port", str(free_port()), "--azurite-port", str(free_port())]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        deadline = time.monotonic() + 300
        for line in process.stdout:  # progress lines, then the URL and login, then the Ctrl-C prompt
            output.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        text = "".join(output)
        assert "Press Ctrl-C to stop everything." in text, text[-3000:]
        assert "Airflow is up: http://127.0.0.1:" in text
        assert "(login admin / " in text
        assert "==> airflow db migrate" in text
        assert len(stack_processes(state)) >= 5  # azurite + the four Airflow components (and their children)

        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=120)[0]
        assert process.returncode == 0, rest[-3000:]
        assert "==> stopping api-server" in rest
        assert stack_processes(state) == []
        assert not (state / "run" / "pids.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
        subprocess.run([str(ROOT / "scripts" / "local-stack"), "--state-dir", str(state), "down"], check=False)
        shutil.rmtree(state, ignore_errors=True)
