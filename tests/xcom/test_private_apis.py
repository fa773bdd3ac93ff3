"""The three places where the backend leans on something its dependencies do not promise, each pinned here so an
upgrade of azure-storage-blob, pandas or pyarrow that changes it fails this file by name instead of slowing the
backend or changing a dtype without a word:

* ``client._config.max_block_size`` / ``max_chunk_get_size`` (azure-storage-blob): the client settings that take
  32 MiB transfers, set on a client WasbHook built (its constructor keywords are not ours to pass);
* ``pandas.io._util.arrow_table_to_pandas`` (pandas): what ``pd.read_parquet`` runs to turn the Arrow table into
  pandas, called with ``self_destruct`` and ``split_blocks`` to keep the pull's peak memory below a plain read's;
* ``sys.getrefcount`` on the downloaded bytes: Arrow's IO thread lets go of its view of them a moment after
  ``read_table`` returns; the pull waits (bounded) for that before it converts.
"""

from __future__ import annotations

import inspect
import io
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
