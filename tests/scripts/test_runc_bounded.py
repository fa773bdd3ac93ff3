"""scripts/localcluster/runc_bounded.py: the OCI runtime that lets privileged containers (kind's nodes) start where
root lacks a capability. Run as dockerd runs it, with a recording runc in place of the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.localcluster import runc_bounded
from scripts.localcluster.runc_bounded import CAPABILITIES, bounding_set, command, missing, option, trim

WRAPPER = Path(runc_bounded.__file__)
EVERY = [f"CAP_{name}" for name in CAPABILITIES]


def test_the_bounding_set_is_read_bit_by_bit(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")  # this project's CI machine: no CAP_SYS_RESOURCE
    bounding = bounding_set(str(status))
    assert missing(bounding) == ["CAP_SYS_RESOURCE"]
    status.write_text("CapBnd:\t000001ffffffffff\n")
    assert missing(bounding_set(str(status))) == []


def test_command_and_options_skip_the_values_of_runcs_global_options() -> None:
    argv = ["--root", "/run/runc", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", "/b", "id"]
    assert command(argv) == "create"
    assert option(argv, "--bundle", "-b") == "/b"
    assert option(["exec", "--process=/tmp/p.json", "id"], "--process", "-p") == "/tmp/p.json"
    assert command(["--systemd-cgroup", "exec", "-p", "/p", "id"]) == "exec"


def test_trim_keeps_only_the_capabilities_of_the_bounding_set() -> None:
    process = {"capabilities": {"bounding": list(EVERY), "effective": ["CAP_SYS_RESOURCE", "CAP_KILL"]}}
    assert trim(process, set(CAPABILITIES) - {"SYS_RESOURCE"})
    assert "CAP_SYS_RESOURCE" not in process["capabilities"]["bounding"]
    assert len(process["capabilities"]["bounding"]) == len(EVERY) - 1
    assert process["capabilities"]["effective"] == ["CAP_KILL"]
    assert not trim(process, set(CAPABILITIES)), "nothing to remove: unchanged"


@pytest.fixture
def recording_runc(tmp_path: Path) -> dict[str, str]:
    """A runc that records its arguments and the capabilities runc would have been given."""
    runc = tmp_path / "runc"
    runc.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        "flag = '--bundle' if '--bundle' in argv else '--process'\n"
        "spec = argv[argv.index(flag) + 1] + ('/config.json' if flag == '--bundle' else '')\n"
        "document = json.load(open(spec))\n"
        "caps = (document.get('process') or document)['capabilities']['bounding']\n"
        "json.dump({'argv': argv, 'bounding': caps}, open(os.environ['RECORD'], 'w'))\n"
    )
    runc.chmod(0o755)
    return {**os.environ, "RUNC": str(runc), "RECORD": str(tmp_path / "record.json")}


def run_wrapper(env: dict[str, str], *argv: str) -> dict:
    subprocess.run([str(WRAPPER), *argv], env=env, check=True, timeout=30)
    return json.loads(Path(env["RECORD"]).read_text())


def test_create_and_exec_reach_runc_with_what_this_machine_can_grant(recording_runc, tmp_path: Path) -> None:
    granted = sorted(f"CAP_{name}" for name in bounding_set())
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": {"bounding": EVERY}}}))
    argv = ["--root", "/run/docker/runtime-runc/moby", "create", "--bundle", str(bundle), "--pid-file", "p", "c1"]
    seen = run_wrapper(recording_runc, *argv)
    assert seen["argv"] == argv, "runc gets the same arguments"
    assert sorted(seen["bounding"]) == granted

    process = tmp_path / "process.json"
    process.write_text(json.dumps({"capabilities": {"bounding": EVERY}}))
    seen = run_wrapper(recording_runc, "exec", "--process", str(process), "--detach", "c1")
    assert sorted(seen["bounding"]) == granted
