"""Fixtures shared by every test: an isolated AIRFLOW_HOME and a real Azurite.

AIRFLOW_HOME must point at a scratch directory before Airflow is first imported, so it is set here at import time
(pytest imports this file before any test module).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import ROOT, Azurite

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__XCOM_BACKEND"] = "include.azblob_xcom_backend.WasbXComBackend"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def wasb_connection(connection_string: str) -> str:
    """An AIRFLOW_CONN_* value (JSON) for a WasbHook connection given by connection string."""
    return json.dumps({"conn_type": "wasb", "extra": {"connection_string": connection_string}})


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


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
