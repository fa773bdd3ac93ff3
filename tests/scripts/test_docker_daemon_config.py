"""The dockerd these scripts start (scripts/localcluster/images.py): the system's daemon.json, plus a bound on
BuildKit's cache unless that file sets one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.localcluster import images


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(images, "SYSTEM_DAEMON_CONFIG", tmp_path / "etc-daemon.json")
    monkeypatch.setattr(images, "DOCKER_STATE", tmp_path / "state")
    return tmp_path


def test_without_a_system_config_the_build_cache_is_bounded(paths: Path) -> None:
    config = json.loads(images.daemon_config().read_text())
    assert config == {"builder": {"gc": {"enabled": True, "defaultKeepStorage": images.BUILD_CACHE_KEEP}}}


def test_the_system_configs_settings_are_kept(paths: Path) -> None:
    (paths / "etc-daemon.json").write_text(json.dumps({"log-level": "warn", "builder": {"entitlements": {}}}))
    config = json.loads(images.daemon_config().read_text())
    assert config["log-level"] == "warn"
    assert config["builder"] == {"entitlements": {}, "gc": {"enabled": True, "defaultKeepStorage": "8GB"}}


def test_a_bound_the_system_config_sets_itself_wins(paths: Path) -> None:
    own = {"builder": {"gc": {"enabled": True, "defaultKeepStorage": "40GB"}}}
    (paths / "etc-daemon.json").write_text(json.dumps(own))
    assert json.loads(images.daemon_config().read_text()) == own


def test_dockerd_reads_that_config(paths: Path) -> None:
    argv = images.dockerd_argv()
    assert argv[:3] == ["dockerd", "--config-file", str(paths / "state" / "daemon.json")]
    assert (paths / "state" / "daemon.json").is_file()
