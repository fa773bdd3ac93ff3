"""Fixtures shared by every test: an isolated AIRFLOW_HOME, a migrated metadata DB, a real Azurite, and (root on
Debian) a Docker engine with every image of the local cluster built from this repository.

AIRFLOW_HOME must point at a scratch directory before Airflow is first imported: pytest_configure runs before
any test module is collected, and pytest_unconfigure removes the directory again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.devstack.services import Azurite
from scripts.localcluster import images
from scripts.paths import ROOT
from tests.support.airflow import AIRFLOW_BIN, XCOM_BACKEND, wasb_connection
from tests.support.machine import require_cluster_machine


def pytest_configure(config: pytest.Config) -> None:
    home = tempfile.mkdtemp(prefix="airflow-home-")
    config.stash[_HOME] = Path(home)
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__XCOM_BACKEND"] = XCOM_BACKEND
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def pytest_unconfigure(config: pytest.Config) -> None:
    if home := config.stash.get(_HOME, None):
        shutil.rmtree(home, ignore_errors=True)


_HOME = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def airflow_home(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.stash[_HOME]


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (enough for `airflow dags test`)."""
    subprocess.run([str(AIRFLOW_BIN), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return airflow_home / "airflow.db"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as service:
        yield service


@pytest.fixture
def xcom_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The backend configured through env vars against Azurite, with a container of this test's own."""
    env = {
        "AIRFLOW_CONN_WASB_DEFAULT": wasb_connection(azurite.connection_string),
        "AIRFLOW__AZBLOB_XCOM__CONTAINER": f"xcom-{uuid.uuid4().hex[:12]}",
        "AIRFLOW__AZBLOB_XCOM__THRESHOLD": "1024",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """A Docker engine: the running one, or Debian's dockerd started for this session and stopped after it."""
    require_cluster_machine()
    started = images.start_docker()
    yield
    if started:
        images.stop_docker()


@pytest.fixture(scope="session")
def built_images(docker_engine: None) -> dict[str, float]:
    """The stand-ins and airflow-azblob:local, built once per session (Docker's cache makes rebuilds fast)."""
    return images.build_all(official=False)
