"""The places where the backend leans on something its dependencies do not promise, each pinned here so an
upgrade of azure-storage-blob, pandas or pyarrow that changes it fails this file by name instead of slowing the
backend or changing a dtype without a word:

* ``client._config.max_block_size`` / ``max_chunk_get_size`` (azure-storage-blob): the client settings that take
  32 MiB transfers, set on a client WasbHook built (its constructor keywords are not ours to pass), and
  ``client._config.retry_policy.total_retries``, which makes ``[azblob_xcom] retries`` every request's default;
* ``pandas.io._util.arrow_table_to_pandas`` (pandas): what ``pd.read_parquet`` runs to turn the Arrow table into
  pandas, called with ``self_destruct`` and ``split_blocks`` to keep the pull's peak memory below a plain read's;
* ``sys.getrefcount`` on the downloaded bytes: Arrow's IO thread lets go of its view of them a moment after
  ``read_table`` returns; the pull waits (bounded) for that before it converts.
"""

from __future__ import annotations

import inspect
import io
import json
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from include import azblob_xcom_backend as backend
from tests.xcom.test_backend import FRAMES


def test_the_sdk_client_settings_the_backend_sets_exist_and_reach_every_blob_client(azurite) -> None:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert {"max_block_size", "max_chunk_get_size", "max_single_put_size"} <= set(vars(client._config))
    client._config.max_block_size = backend.TRANSFER_BLOCK_BYTES
    client._config.max_chunk_get_size = backend.TRANSFER_BLOCK_BYTES
    blob = client.get_blob_client("c", "b")
    assert (blob._config.max_block_size, blob._config.max_chunk_get_size) == (backend.TRANSFER_BLOCK_BYTES,) * 2
    # The upload side is pinned end to end by test_backend.py::test_large_blobs_move_in_32_mib_blocks.


def test_pandas_converts_arrow_tables_in_read_parquet_through_the_function_the_backend_calls() -> None:
    from pandas.io import _util

    assert "to_pandas_kwargs" in inspect.signature(_util.arrow_table_to_pandas).parameters
    for name, df in FRAMES.items():
        buffer = io.BytesIO()
        df.to_parquet(buffer, engine="pyarrow")
        table = pq.read_table(pa.BufferReader(buffer.getvalue()), use_pandas_metadata=True)
        ours = _util.arrow_table_to_pandas(table, to_pandas_kwargs={"split_blocks": True, "self_destruct": True})
        theirs = pd.read_parquet(io.BytesIO(buffer.getvalue()), engine="pyarrow")
        assert ours.dtypes.to_dict() == theirs.dtypes.to_dict(), name


def test_arrow_lets_go_of_the_downloaded_bytes_soon_after_read_table_returns() -> None:
    buffer = io.BytesIO()
    FRAMES["mixed dtypes and attrs"].to_parquet(buffer, engine="pyarrow")
    data = bytearray(buffer.getvalue())
    pq.read_table(pa.BufferReader(data), use_pandas_metadata=True)
    started = time.monotonic()
    backend._released(data, bound_s=5.0)
    waited = time.monotonic() - started
    # Referenced by this frame's variable and _released's getrefcount argument only, well before the bound.
    assert waited < 5.0, f"Arrow still held the downloaded bytes after {waited:.1f} s"


def test_the_retry_policy_total_the_backend_sets_is_every_requests_default(monkeypatch) -> None:
    """``client._config.retry_policy.total_retries`` (service_client's ``retries``) is the object in the client's
    pipeline: a request through a blob client it handed out is tried 1 + retries times. Counted on a socket that
    accepts and hangs up, with no backoff between tries (initial_backoff 0, no jitter)."""
    import socket
    import threading

    from azure.core.exceptions import AzureError

    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    connection_string = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=YQ==;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    extra = {
        "connection_string": connection_string,
        "initial_backoff": 0,
        "increment_base": 0,
        "random_jitter_range": 0,
    }
    monkeypatch.setenv("AIRFLOW_CONN_WASB_COUNTED", json.dumps({"conn_type": "wasb", "extra": extra}))
    try:
        for retries in (0, 2):
            accepted.clear()
            blob = backend.service_client("wasb_counted", retries).get_blob_client("c", "b")
            with pytest.raises(AzureError):
                blob.get_blob_properties()
            assert len(accepted) == 1 + retries
    finally:
        listener.close()
