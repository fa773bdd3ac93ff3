"""The image's Python environment, rebuilt without Docker from what the Dockerfile says.

* Python: ``python${PYTHON_VERSION}`` (the Dockerfile's ARG) when this machine has it, else the test interpreter.
* Packages: the Dockerfile's single ``pip install`` line, its requirement files mapped through the RUN's bind
  mounts to this repository; the constraints URL (not reachable offline) is replaced by requirements.lock, the
  universal lock built from the same requirements. Installed with uv for speed; the venv is cached under
  ``.tools/image-venv/<hash of its inputs>`` so repeated runs take seconds.
* Layout: a fake root holding every COPY target of the final stage (``include/`` -> ``<root>/opt/airflow/include``);
  the Dockerfile's ENV applied with absolute paths moved under that root; AIRFLOW_HOME as in the base image.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.image.dockerfile import ROOT, Dockerfile, parse

CACHE = ROOT / ".tools" / "image-venv"
LOCK = ROOT / "requirements.lock"
UV = ROOT / ".venv" / "bin" / "uv"
BASE_IMAGE_ENV = {"AIRFLOW_HOME": "/opt/airflow"}  # set by apache/airflow itself
PIP_FLAGS_WITHOUT_EFFECT_HERE = {"--no-cache-dir"}
BUILDER_VERSION = "1"  # bump to force a rebuild when this file's install logic changes


@dataclass
class ImageEnv:
    python: Path  # the venv's interpreter
    root: Path  # stands in for the image's /
    env: dict[str, str]  # the container's environment, paths moved under root
    python_version: str  # "3.12"
    wanted_python: str  # the Dockerfile's PYTHON_VERSION

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a command as a container of the image would (its PATH, ENV and an unrelated working directory)."""
        return subprocess.run(
            args,
            env=env if env is not None else self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def find_python(version: str) -> Path:
    """``python<version>`` (pyenv installs, then PATH; each one tried, as pyenv shims may be inactive), else the
    interpreter running the tests (requirements.lock covers 3.11 and 3.12)."""
    candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))[::-1]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return Path(candidate)
    return Path(sys.executable)


def install_arguments(dockerfile: Dockerfile) -> list[str]:
    """uv pip install arguments equivalent to the Dockerfile's pip line, with requirements.lock as constraints."""
    pip = dockerfile.pip_install()
    if pip.words[:2] != ["pip", "install"]:
        raise AssertionError(f"the image's package install is not a plain pip install: {pip.words}")
    arguments: list[str] = []
    words = iter(pip.words[2:])
    for word in words:
        if word in ("-r", "--requirement"):
            path = next(words)
            arguments += ["-r", str(ROOT / pip.mounts.get(path, path))]
        elif word in ("-c", "--constraint"):
            next(words)
            arguments += ["-c", str(LOCK)]
        elif word not in PIP_FLAGS_WITHOUT_EFFECT_HERE:
            raise AssertionError(f"pip option {word!r} in the Dockerfile is not reproduced by tests/image: add it")
    if not pip.requirements or not pip.constraints:
        raise AssertionError("the Dockerfile must install requirement files with constraints")
    return arguments


def venv_key(python: Path, arguments: list[str]) -> str:
    digest = hashlib.sha256(BUILDER_VERSION.encode())
    version = subprocess.run([python, "-VV"], capture_output=True, text=True, check=True).stdout
    digest.update(version.encode())
    for argument in arguments:
        digest.update(argument.encode())
        if Path(argument).is_file():
            digest.update(Path(argument).read_bytes())
    return digest.hexdigest()[:16]


def build_venv(python: Path, arguments: list[str]) -> Path:
    """The cached venv for these inputs, built when missing (a marker file says it is complete)."""
    key = venv_key(python, arguments)
    target = CACHE / key
    marker = target / ".complete"
    if marker.exists():
        return target
    for old in CACHE.glob("*"):  # a partial build of this key, or builds of older inputs
        shutil.rmtree(old, ignore_errors=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([UV, "venv", "--quiet", "--python", python, target], check=True, env=env)
    install = [UV, "pip", "install", "--quiet", "--python", target / "bin" / "python", *arguments]
    subprocess.run(install, check=True, env=env)
    marker.write_text(" ".join(arguments) + "\n")
    return target


def lay_out_root(dockerfile: Dockerfile, root: Path) -> None:
    """Copy every COPY of the final stage from the build context into ``root`` (stage copies: empty folder)."""
    for sources, target, flags in dockerfile.copies:
        destination = root / target.lstrip("/")
        if "from" in flags:  # the dags stage: BAKE_DAGS=false gives an empty folder
            destination.mkdir(parents=True, exist_ok=True)
            continue
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into = destination / path.name if target.endswith("/") else destination
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)


def container_env(dockerfile: Dockerfile, venv: Path, root: Path) -> dict[str, str]:
    """The base image's and the Dockerfile's ENV, absolute paths moved under ``root``; nothing from this shell."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(root / "home" / "airflow"), "LANG": "C.UTF-8"}
    for key, value in {**BASE_IMAGE_ENV, **dockerfile.env}.items():
        env[key] = os.pathsep.join(str(root / p.lstrip("/")) if p.startswith("/") else p for p in value.split(":"))
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def build_image_env(root: Path) -> ImageEnv:
    dockerfile = parse()
    wanted = dockerfile.args["PYTHON_VERSION"]
    python = find_python(wanted)
    venv = build_venv(python, install_arguments(dockerfile))
    lay_out_root(dockerfile, root)
    version = subprocess.run(
        [venv / "bin" / "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return ImageEnv(
        python=venv / "bin" / "python",
        root=root,
        env=container_env(dockerfile, venv, root),
        python_version=version,
        wanted_python=wanted,
    )
