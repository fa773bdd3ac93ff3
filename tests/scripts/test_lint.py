"""shellcheck every shell script of scripts/ and .ci/, hadolint the Dockerfile (both linters come as wheels)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.paths import ROOT

BIN = ROOT / ".venv" / "bin"


def shell_scripts() -> list[Path]:
    """Files of scripts/ (its subfolders too, but for the stand-ins' entrypoints, which mirror upstream images' own
    and are held to them by tests/image) and .ci/ whose shebang names bash or sh."""
    found = []
    for folder in (ROOT / "scripts", ROOT / ".ci"):
        for path in sorted(folder.rglob("*")):
            if "standins" in path.parts or "__pycache__" in path.parts:
                continue
            if path.is_file() and path.read_bytes()[:64].split(b"\n")[0].startswith(b"#!"):
                first = path.read_bytes().split(b"\n")[0]
                if first.endswith((b"bash", b"/sh")):
                    found.append(path)
    return found


def test_the_kind_and_push_scripts_are_among_the_checked_scripts() -> None:
    names = {path.name for path in shell_scripts()}
    assert {"kind", "push-dags", "bootstrap", "run", "cluster", "images"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_is_shellcheck_clean(script: Path) -> None:
    done = subprocess.run(
        [BIN / "shellcheck", "--external-sources", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_is_executable_and_strict(script: Path) -> None:
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert "set -euo pipefail" in script.read_text()


def test_dockerfile_is_hadolint_clean() -> None:
    done = subprocess.run([BIN / "hadolint", ROOT / "Dockerfile"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install -y git\n")
    done = subprocess.run([BIN / "hadolint", bad], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest tag
