"""Helpers for running real Airflow from tests: the CLI of this venv and connection values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
XCOM_BACKEND = "include.azblob_xcom_backend.WasbXComBackend"


def wasb_connection(connection_string: str) -> str:
    """An AIRFLOW_CONN_* value (JSON) for a WasbHook connection given by connection string."""
    return json.dumps({"conn_type": "wasb", "extra": {"connection_string": connection_string}})
