"""XCom backend that keeps large task results in Azure Blob Storage instead of Airflow's metadata DB.

Why: Airflow stores XCom values in its metadata database. A pandas DataFrame returned by a TaskFlow task
becomes hex-encoded Parquet inside a JSON row (about three times the Parquet size), which bloats the DB and
slows the scheduler. This backend uploads such values to Blob Storage and stores a small, readable JSON
reference in the DB instead; the next task downloads the value again. DAG code stays plain ``return df``.

Select it with ``[core] xcom_backend = include.azblob_xcom_backend.WasbXComBackend`` (the image sets it) and
configure it in the ``[azblob_xcom]`` section (or ``AIRFLOW__AZBLOB_XCOM__<OPTION>`` variables; the chart's
``xcom.*`` values). The options are :class:`BackendConfig`'s fields; their one table, with defaults and meanings, is
in docs/xcom-backend.md (tests/xcom/test_option_table.py keeps the two equal).

What goes where:
* DataFrames and pyarrow Tables above the threshold: one Parquet blob (exact dtypes, index, ``attrs``).
* Any other value above the threshold: Airflow's own serde JSON, compressed, in one blob.
* Values at or below the threshold: stored inline, exactly as Airflow's BaseXCom stores them.

Safety: nothing is ever pickled; reads only parse Parquet or JSON through Airflow's serde (which honours
``[core] allowed_deserialization_classes``). A SHA-256 taken at write time is checked on every read. A missing
blob or unreachable storage raises an error that names the reference; it never returns the reference instead.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import importlib
import io
import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from airflow.sdk.bases.xcom import BaseXCom

from include import metrics

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient

log = logging.getLogger(__name__)

SECTION = "azblob_xcom"
URI_SCHEME = "xcom_wasb://"
REFERENCE_MARKER = "azblob_xcom_ref"
REFERENCE_VERSION = 1
CODECS = ("zstd", "lz4", "gzip", "brotli", "none")
TRANSFER_BLOCK_BYTES = 32 * 1024 * 1024
# A table is pushed as it is encoded: blocks of this size are staged while the next row group is written.
STAGED_BLOCK_BYTES = 8 * 1024 * 1024
PREVIEW_MAX_ROWS = 1000  # the most rows the UI's XCom preview shows (include/xcom_preview.py)
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default: the file layout pq.write_table gives
FORMATS = ("parquet", "json")
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
PANDAS_ATTRS_KEY = b"PANDAS_ATTRS"  # where pandas itself keeps DataFrame.attrs in Parquet
CATEGORIES_KEY = b"azblob_xcom.categoricals"
INDEX_FREQ_KEY = b"azblob_xcom.index_freq"

# The Azure SDK logs every request and response header at INFO: that would drown the task log.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


class AzBlobXComError(Exception):
    """Base class of every error this backend raises."""

    metric_label = "other"  # the error tag of the azblob_xcom.errors metric (include/metrics.py)


class XComConfigError(AzBlobXComError):
    """An ``[azblob_xcom]`` option has a value the backend cannot use."""

    metric_label = "config"


class XComSerializationError(AzBlobXComError):
    """A value cannot be written in a safe, exact format."""

    metric_label = "serialization"


class XComReferenceError(AzBlobXComError):
    """A stored value carries the reference marker but is not a reference this backend can read."""

    metric_label = "reference"


class XComBlobNotFoundError(AzBlobXComError):
    """The blob a reference points to does not exist (any more)."""

    metric_label = "not_found"


class XComIntegrityError(AzBlobXComError):
    """The blob's content does not match the checksum recorded when it was written."""

    metric_label = "integrity"


class XComStorageError(AzBlobXComError):
    """Blob Storage could not be reached or refused the request."""

    metric_label = "storage"


# --------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BackendConfig:
    """The ``[azblob_xcom]`` options, validated."""

    conn_id: str = "wasb_default"
    container: str = "airflow-xcom"
    prefix: str = ""
    threshold: int = 65536
    compression: str = "zstd"
    max_concurrency: int = 4
    retries: int = 3
    preview_rows: int = 100

    @classmethod
    def from_airflow(cls) -> BackendConfig:
        """Read and validate the options from Airflow's configuration (airflow.cfg or env vars)."""
        from airflow.sdk.configuration import conf

        defaults = cls()

        def option(name: str) -> str:
            return str(conf.get(SECTION, name, fallback=str(getattr(defaults, name)))).strip()

        return cls(
            conn_id=_require(option("conn_id"), "conn_id", "an Airflow connection id, e.g. wasb_default"),
            container=_valid_container(option("container")),
            prefix=option("prefix").strip("/"),
            threshold=_whole_number(option("threshold"), "threshold", minimum=0),
            compression=_valid_codec(option("compression")),
            max_concurrency=_whole_number(option("max_concurrency"), "max_concurrency", minimum=1),
            retries=_whole_number(option("retries"), "retries", minimum=0),
            preview_rows=_whole_number(option("preview_rows"), "preview_rows", minimum=1, maximum=PREVIEW_MAX_ROWS),
        )


def _setting(name: str) -> str:
    return f"[{SECTION}] {name} (env AIRFLOW__{SECTION.upper()}__{name.upper()})"


def _require(value: str, name: str, what: str) -> str:
    if not value:
        raise XComConfigError(f"{_setting(name)} is empty: set it to {what}.")
    return value


def _whole_number(raw: str, name: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        number = int(raw)
    except ValueError:
        number = None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise XComConfigError(f"{_setting(name)} must be a whole number {bounds}; got {raw!r}.")
    return number


def _valid_codec(raw: str) -> str:
    codec = raw.lower()
    if codec not in CODECS:
        raise XComConfigError(f"{_setting('compression')} must be one of {', '.join(CODECS)}; got {raw!r}.")
    return codec


def _valid_container(raw: str) -> str:
    """Azure's rule: 3-63 characters, lowercase letters, digits and single hyphens, no hyphen at either end."""
    ok = (
        3 <= len(raw) <= 63
        and all(c.islower() or c.isdigit() or c == "-" for c in raw)
        and raw.isascii()
        and not raw.startswith("-")
        and not raw.endswith("-")
        and "--" not in raw
    )
    if not ok:
        raise XComConfigError(
            f"{_setting('container')} must be a valid Azure container name (3-63 lowercase letters, digits "
            f"and single hyphens, starting and ending with a letter or digit); got {raw!r}."
        )
    return raw


# ------------------------------------------------------------------------------------------------ reference


@dataclass(frozen=True)
class BlobReference:
    """What the metadata DB holds for an offloaded value: enough to find, check and decode the blob."""

    container: str
    blob_name: str
    format: str
    compression: str
    size_bytes: int
    sha256: str
    python_type: str
    rows: int | None = None
    columns: int | None = None

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}{self.container}/{self.blob_name}"

    def to_json(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            REFERENCE_MARKER: REFERENCE_VERSION,
            "uri": self.uri,
            "format": self.format,
            "compression": self.compression,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "type": self.python_type,
        }
        if self.rows is not None:
            ref["rows"] = self.rows
            ref["columns"] = self.columns
        return ref

    @classmethod
    def from_json(cls, value: Any) -> BlobReference | None:
        """The reference stored in ``value``; None for an ordinary (inline) value; an error for a broken one."""
        if not isinstance(value, dict) or REFERENCE_MARKER not in value:
            return None
        try:
            return cls._parse(value)
        except (KeyError, TypeError, ValueError) as err:
            raise XComReferenceError(
                f"XCom value carries the '{REFERENCE_MARKER}' marker but is not a valid reference ({err}): "
                f"{value!r}. It was not written by this backend version, or was edited; restore the original "
                f"row or clear the task to recompute it."
            ) from None

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> BlobReference:
        if value[REFERENCE_MARKER] != REFERENCE_VERSION:
            raise ValueError(f"unsupported reference version {value[REFERENCE_MARKER]!r}")
        container, blob_name = parse_uri(value["uri"])
        if value["format"] not in FORMATS:
            raise ValueError(f"unknown format {value['format']!r}")
        if value["compression"] not in CODECS:
            raise ValueError(f"unknown compression {value['compression']!r}")
        sha256 = value["sha256"]
        if not isinstance(sha256, str) or len(sha256) != 64:
            raise ValueError("sha256 must be 64 hex digits")
        size = value["size_bytes"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError("size_bytes must be a whole number above 0")
        return cls(
            container=container,
            blob_name=blob_name,
            format=value["format"],
            compression=value["compression"],
            size_bytes=size,
            sha256=sha256,
            python_type=str(value.get("type", "")),
            rows=value.get("rows"),
            columns=value.get("columns"),
        )


def check_owned(config: BackendConfig, ref: BlobReference) -> None:
    """Refuse a reference to a blob outside this backend's container and prefix. A reference is a row any task can
    write (an XCom of its own), so it must not steer a read or a purge to other blobs: task logs, another prefix."""
    prefix = f"{config.prefix}/" if config.prefix else ""
    segments = ref.blob_name.split("/")
    if ref.container == config.container and ref.blob_name.startswith(prefix) and not {".", ".."} & set(segments):
        return
    raise XComReferenceError(
        f"XCom reference {ref.uri} is outside this backend's blobs ({URI_SCHEME}{config.container}/{prefix}...): "
        f"refused. If [azblob_xcom] container or prefix changed since the value was written, set them back to "
        f"read it; otherwise the row was edited or forged: clear the task to recompute it."
    )


def parse_uri(uri: Any) -> tuple[str, str]:
    """(container, blob name) of an ``xcom_wasb://<container>/<blob name>`` URI; ValueError for anything else."""
    if not isinstance(uri, str) or not uri.startswith(URI_SCHEME):
        raise ValueError(f"uri must start with {URI_SCHEME}")
    container, _, blob_name = uri[len(URI_SCHEME) :].partition("/")
    if not container or not blob_name:
        raise ValueError(f"uri must be {URI_SCHEME}<container>/<blob name>")
    return container, blob_name


@dataclass(frozen=True)
class XComIds:
    """The ids Airflow passes to ``serialize_value``: they name the blob and go into its metadata."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str

    def blob_name(self, prefix: str, extension: str) -> str:
        """``<prefix>/dag_id=../run_id=../task_id=../map_index=../key=../<unique>.<ext>``: one segment per id,
        each percent-encoded so that no id can add path levels or form a ``..`` segment."""
        segments = [f"{name}={quote(str(value), safe='')}" for name, value in self.as_dict().items()]
        unique = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex}.{extension}"
        return "/".join([p for p in (prefix,) if p] + segments + [unique])

    def as_dict(self) -> dict[str, str]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": str(self.map_index),
            "key": self.key,
        }

    def blob_metadata(self) -> dict[str, str]:
        """Blob metadata values must be ASCII header text: anything else is percent-encoded."""
        printable = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
        return {name: quote(value, safe=printable) for name, value in self.as_dict().items()}


def metadata_ids(metadata: dict[str, str]) -> dict[str, str]:
    """The XCom ids recorded in a blob's metadata, decoded (used by the retention sweep and audits)."""
    return {name: unquote(metadata[name]) for name in ("dag_id", "run_id", "task_id", "map_index", "key")}


# ---------------------------------------------------------------------------------------------- the codecs


def _is_table(value: Any) -> bool:
    """True for pandas DataFrames and pyarrow Tables, without importing either library needlessly."""
    module = type(value).__module__
    if module.startswith("pandas"):
        import pandas as pd

        return isinstance(value, pd.DataFrame)
    if module.startswith("pyarrow"):
        import pyarrow as pa

        return isinstance(value, pa.Table)
    return False


def _parquet_codec(compression: str) -> str:
    return "NONE" if compression == "none" else compression


def encode_table(value: Any, compression: str, sink: Any) -> tuple[str, int, int]:
    """Write a DataFrame or Table as Parquet into ``sink`` (a writable file object), one row group of
    ROW_GROUP_ROWS rows at a time: of a DataFrame, only one row group's Arrow copy exists at once. Returns the value's
    type name and its row and column counts."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    codec = _parquet_codec(compression)
    if not isinstance(value, pd.DataFrame):
        with pq.ParquetWriter(sink, value.schema, compression=codec) as writer:
            writer.write_table(value, row_group_size=ROW_GROUP_ROWS)
        return "pyarrow.Table", value.num_rows, value.num_columns
    try:
        schema = pa.Schema.from_pandas(value)  # the whole frame's: its index range, each column's one type
        # pandas' own metadata restores index, dtypes and names; attrs, full categories and an index freq
        # need keys of their own (pandas keeps attrs under PANDAS_ATTRS itself when it reads).
        extra = {PANDAS_ATTRS_KEY: json.dumps(value.attrs)} if value.attrs else {}
        if categoricals := _categorical_columns(value):
            extra[CATEGORIES_KEY] = json.dumps(categoricals)
        if freq := getattr(value.index, "freqstr", None):  # a DatetimeIndex's freq is not kept by Parquet
            extra[INDEX_FREQ_KEY] = freq
        schema = schema.with_metadata({**schema.metadata, **extra})
        with pq.ParquetWriter(sink, schema, compression=codec) as writer:
            for start in range(0, len(value), ROW_GROUP_ROWS):
                part = pa.Table.from_pandas(value.iloc[start : start + ROW_GROUP_ROWS])
                if not part.schema.equals(schema, check_metadata=False):  # e.g. a column all None in this part
                    part = part.cast(schema)
                writer.write_table(part, row_group_size=ROW_GROUP_ROWS)
                del part
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise XComSerializationError(_unparquetable_message(value, err)) from err
    return "pandas.DataFrame", len(value), len(value.columns)


def _categorical_columns(df: Any) -> dict[str, dict[str, Any]]:
    """Parquet keeps only the categories present in the data, and turns non-string categoricals into plain
    columns. Record each categorical column's full categories (as Arrow IPC, so any type survives)."""
    import base64

    import pandas as pd
    import pyarrow as pa

    found = {}
    for position, dtype in enumerate(df.dtypes):
        if isinstance(dtype, pd.CategoricalDtype):
            batch = pa.record_batch([pa.array(dtype.categories, from_pandas=True)], names=["categories"])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            ipc = base64.b64encode(sink.getvalue().to_pybytes()).decode()
            found[str(position)] = {"ordered": bool(dtype.ordered), "categories": ipc}
    return found


def _restore_categoricals(df: Any, spec: dict[str, dict[str, Any]]) -> Any:
    import base64

    import pandas as pd
    import pyarrow as pa

    for position, entry in spec.items():
        reader = pa.ipc.open_stream(base64.b64decode(entry["categories"]))
        categories = pd.Index(reader.read_all().column(0).to_pandas()).rename(None)
        dtype = pd.CategoricalDtype(categories, ordered=entry["ordered"])
        if df.dtypes.iloc[int(position)] != dtype:  # Parquet already gave it back whole when every category is used
            df.isetitem(int(position), df.iloc[:, int(position)].astype(dtype))
    return df


def _unparquetable_message(df: Any, err: Exception) -> str:
    import pyarrow as pa

    bad = []
    for name in df.select_dtypes(include="object").columns:
        try:
            pa.array(df[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            kinds = sorted({type(v).__name__ for v in df[name].dropna()})
            bad.append(f"{name!r} ({', '.join(kinds)})")
    where = f"column(s) {', '.join(bad)} mix Python types" if bad else f"a column cannot be stored ({err})"
    return (
        f"Cannot store this DataFrame as Parquet: {where}. Parquet needs one type per column, and this "
        f"backend never pickles. Convert the column before returning the frame, e.g. "
        f"df[col] = df[col].astype(str), or split it into one column per type."
    )


def decode_table(data: Any, python_type: str) -> Any:
    """The DataFrame or Table in the Parquet bytes ``data``. Pass ``data`` without keeping a reference to it
    (``decode_table(download(...), ...)``): the compressed bytes are freed before the conversion to pandas, the
    moment a pull needs the most memory (10M rows: about 100 MB less at the peak, docs/xcom-backend.md)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data), use_pandas_metadata=True)
    _released(data)
    del data
    return frame_of(table, python_type)


def frame_of(table: Any, python_type: str) -> Any:
    """The value a Parquet XCom's Arrow table stands for: the Table itself, or the DataFrame with the dtypes, attrs,
    categories and index freq it was written with (also used on the first rows alone, by include/xcom_preview.py).
    Pass ``table`` without keeping a reference to it: its columns are freed as pandas takes them."""
    if python_type == "pyarrow.Table":
        return table
    # What pd.read_parquet runs: the same dtypes. Private to pandas: tests/xcom/test_private_apis.py pins it.
    from pandas.io._util import arrow_table_to_pandas

    metadata = table.schema.metadata or {}
    # self_destruct frees Arrow's copy of each column as soon as pandas has its own, and split_blocks keeps pandas
    # from building one more consolidated copy: the pull's peak memory is below the floor's (docs/xcom-backend.md).
    df = arrow_table_to_pandas(table, to_pandas_kwargs={"split_blocks": True, "self_destruct": True})
    del table
    if PANDAS_ATTRS_KEY in metadata:  # as pd.read_parquet does
        df.attrs = json.loads(metadata[PANDAS_ATTRS_KEY])
    if CATEGORIES_KEY in metadata:
        df = _restore_categoricals(df, json.loads(metadata[CATEGORIES_KEY]))
    if INDEX_FREQ_KEY in metadata:
        df.index.freq = metadata[INDEX_FREQ_KEY].decode()
    return df


def _released(data: Any, bound_s: float = 1.0) -> None:
    """Wait (at most ``bound_s``) until ``data`` is referenced by its caller only: after read_table returns, one of
    Arrow's IO threads may still hold a view of the source for a moment (it drops it once it gets the GIL): an
    implementation detail of pyarrow, pinned by tests/xcom/test_private_apis.py."""
    deadline = time.monotonic() + bound_s
    # 3 references: the caller's variable, this parameter, getrefcount's argument.
    while sys.getrefcount(data) > 3:
        if time.monotonic() > deadline:
            log.debug("The downloaded XCom bytes are still referenced after %.1f s: freed later", bound_s)
            return
        time.sleep(0.001)


def encode_json(serialized: Any, compression: str) -> bytes:
    """Airflow serde output as compact JSON, compressed with a self-delimiting stream codec."""
    raw = json.dumps(serialized, separators=(",", ":"), ensure_ascii=False).encode()
    if compression == "none":
        return raw
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, compression) as stream:
        stream.write(raw)
    return sink.getvalue().to_pybytes()


def decode_json(data: Any, compression: str) -> Any:
    from airflow.sdk.serde import deserialize

    if compression != "none":
        import pyarrow as pa

        with pa.CompressedInputStream(pa.BufferReader(data), compression) as stream:
            data = stream.read()
    return deserialize(json.loads(bytes(data)))


def inline_size(serialized: Any) -> int:
    """Size in bytes of a value's inline form, as compact JSON."""
    return len(json.dumps(serialized, separators=(",", ":"), ensure_ascii=False).encode())


# ------------------------------------------------------------------------------------------- blob transfer


CONNECTION_STRING_KEYS = ("connection_string", "extra__wasb__connection_string")
# Options of the SDK's BlobServiceClient a connection may carry beside its connection string (the chart's
# azure.connection.clientOptions): its retry policy's backoff and the transport's timeouts. WasbHook hands a
# connection's extras to the client the same way.
CLIENT_OPTIONS = frozenset(
    {"retry_total", "initial_backoff", "increment_base", "random_jitter_range", "connection_timeout", "read_timeout"}
)


def connection_string_client(conn_id: str) -> tuple[str, dict[str, Any]] | None:
    """The connection string and client options of a connection that holds nothing else (Azurite, account keys),
    else None.

    For such a connection WasbHook would build the very same client (``from_connection_string``), but importing
    the hook costs each task's first XCom about 0.3 s more than azure-storage-blob alone (it also loads
    azure.identity and the provider): docs/benchmarks/xcom.md, cold. Any other connection goes through the hook.
    """
    from airflow.sdk.bases.hook import BaseHook

    extra = dict(BaseHook.get_connection(conn_id).extra_dejson or {})
    strings = [extra.pop(key) for key in CONNECTION_STRING_KEYS if key in extra]
    if len(strings) == 1 and strings[0] and set(extra) <= CLIENT_OPTIONS:
        return strings[0], extra
    return None


@lru_cache(maxsize=8)
def service_client(conn_id: str, retries: int | None = None) -> BlobServiceClient:
    """One BlobServiceClient per connection, retries and process, built from the Airflow connection as WasbHook
    builds it (also used by the retention sweep and the preview, so all reach storage the same way).

    ``retries`` (``[azblob_xcom] retries``) is how often every request through this client, and the container and
    blob clients it hands out, is retried; None keeps the connection's own (its ``retry_total`` option, else the
    SDK's 3). The backoff between them is the connection's (``initial_backoff``, ``increment_base``)."""
    if built := connection_string_client(conn_id):
        from azure.storage.blob import BlobServiceClient

        connection_string, options = built
        client = BlobServiceClient.from_connection_string(connection_string, **options)
    else:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        client = WasbHook(wasb_conn_id=conn_id).blob_service_client
    # The SDK moves a blob above 64 MiB in 4 MiB blocks and reads it in 4 MiB chunks: 32 MiB halves the transfer
    # time of a large DataFrame (docs/benchmarks/xcom.md). These are the SDK's max_block_size/max_chunk_get_size
    # client settings, set on the client's configuration (shared by its blob clients) however it was built.
    # Private to the SDK: tests/xcom/test_private_apis.py pins both.
    client._config.max_block_size = TRANSFER_BLOCK_BYTES
    client._config.max_chunk_get_size = TRANSFER_BLOCK_BYTES
    # The retry policy object is the one in the client's pipeline: its total is each request's default.
    if retries is not None:
        client._config.retry_policy.total_retries = retries
    return client


def client_of(config: BackendConfig) -> BlobServiceClient:
    """The backend's client: its connection, each request retried ``[azblob_xcom] retries`` times."""
    return service_client(config.conn_id, config.retries)


_created_containers: set[tuple[str, str]] = set()
_container_lock = threading.Lock()


def _ensure_container(config: BackendConfig, container: str) -> None:
    from azure.core.exceptions import ResourceExistsError

    with _container_lock:
        if (config.conn_id, container) in _created_containers:
            return
        try:
            client_of(config).create_container(container)
            log.info("Created XCom container %s", container)
        except ResourceExistsError:
            pass
        _created_containers.add((config.conn_id, container))


class _MemoryWriter(io.RawIOBase):
    """A seekable, writable view of a preallocated buffer: parallel downloads write into it in place."""

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self._view = memoryview(self.buffer)
        self._pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self.buffer)}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data: Any) -> int:
        size = len(data)
        self._view[self._pos : self._pos + size] = data
        self._pos += size
        return size


def _media_type(fmt: str) -> str:
    return PARQUET_MEDIA_TYPE if fmt == "parquet" else "application/json"


def upload(config: BackendConfig, blob_name: str, data: Any, ids: XComIds, ref_fields: dict[str, str]) -> None:
    """Upload ``data`` (bytes or a pyarrow Buffer) as a new blob, creating the container on first use."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ContentSettings

    blob = _blob_client(config, config.container, blob_name)
    metadata = {**ids.blob_metadata(), **ref_fields}
    size = len(data) if isinstance(data, bytes) else data.size

    def put() -> None:
        import pyarrow as pa

        blob.upload_blob(
            pa.BufferReader(data),
            length=size,
            overwrite=False,
            metadata=metadata,
            content_settings=ContentSettings(content_type=_media_type(ref_fields["format"])),
            max_concurrency=config.max_concurrency,
        )

    try:
        _creating_container(config, put)
    except AzureError as err:
        raise _upload_error(config, ids, blob_name, err) from err


def _creating_container(config: BackendConfig, write: Any) -> Any:
    """``write()``, and once more after creating the container if it reported the container missing."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return write()
    except ResourceNotFoundError as err:
        if getattr(err, "error_code", None) != "ContainerNotFound":
            raise
        _ensure_container(config, config.container)
        return write()


def _upload_error(config: BackendConfig, ids: XComIds, blob_name: str, err: Exception) -> XComStorageError:
    return XComStorageError(
        f"Could not upload XCom {ids.key!r} of {ids.dag_id}.{ids.task_id} (run {ids.run_id}, map_index "
        f"{ids.map_index}) to {URI_SCHEME}{config.container}/{blob_name} through connection {config.conn_id!r}: "
        f"{_short(err)}"
    )


class BlobWriter(io.RawIOBase):
    """A new blob written as a stream (the Parquet writer's sink): the bytes are hashed as they come and, once
    there are more than STAGED_BLOCK_BYTES, staged as blocks, at most ``max_concurrency`` in flight, so a push holds
    a few blocks and never the file. Nothing is visible until ``commit`` (a block blob is its committed block list;
    Azure discards uncommitted blocks after a week): a push that fails half-way leaves no blob. A value that fits in
    one block stays in memory, for the inline check (``whole``), and ``commit`` uploads it in one request."""

    def __init__(self, config: BackendConfig, ids: XComIds, blob_name: str, client_ready: Any = None) -> None:
        self.config, self.ids, self.blob_name = config, ids, blob_name
        self.client_ready = client_ready  # a thread building the client: the first block waits for it
        self.digest = hashlib.sha256()
        self.size = 0
        self.buffer = bytearray()  # written, not staged yet
        self.block_ids: list[str] = []
        self.in_flight: collections.deque[Any] = collections.deque()
        self.pool: Any = None  # and self.blob, the client: made when the first block is staged
        self.blob: Any = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.buffer += data
        while len(self.buffer) > STAGED_BLOCK_BYTES:  # ">": a value of exactly one block stays whole
            self._stage(bytes(self.buffer[:STAGED_BLOCK_BYTES]))
            del self.buffer[:STAGED_BLOCK_BYTES]
        return len(data)

    @property
    def staged(self) -> bool:
        return bool(self.block_ids)

    def whole(self) -> bytes:
        """Everything written, while nothing was staged."""
        if self.staged:
            raise RuntimeError("the value was staged in blocks: it is not held whole")
        return bytes(self.buffer)

    def _stage(self, block: bytes) -> None:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            if self.client_ready is not None:
                self.client_ready.join()  # one client: the blocks must not build a second one beside it
            self.blob = _blob_client(self.config, self.config.container, self.blob_name)
            self.pool = ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="azblob-xcom-block")
        while len(self.in_flight) >= self.config.max_concurrency:
            self._settle(self.in_flight.popleft())
        block_id = base64.b64encode(f"{len(self.block_ids):08d}".encode()).decode()
        self.block_ids.append(block_id)
        stage = partial(self.blob.stage_block, block_id, block, length=len(block))
        self.in_flight.append(self.pool.submit(_creating_container, self.config, stage))

    def _settle(self, staging: Any) -> None:
        from azure.core.exceptions import AzureError

        try:
            staging.result()
        except AzureError as err:
            raise _upload_error(self.config, self.ids, self.blob_name, err) from err

    def commit(self, ref_fields: dict[str, str]) -> None:
        """Make the blob: the blocks staged and the rest as one block list, or the whole value in one upload."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContentSettings

        if not self.staged:
            upload(self.config, self.blob_name, self.whole(), self.ids, ref_fields)
            return
        if self.buffer:
            self._stage(bytes(self.buffer))
            self.buffer.clear()
        while self.in_flight:
            self._settle(self.in_flight.popleft())
        try:
            self.blob.commit_block_list(
                self.block_ids,
                metadata={**self.ids.blob_metadata(), **ref_fields},
                content_settings=ContentSettings(content_type=_media_type(ref_fields["format"])),
            )
        except AzureError as err:
            raise _upload_error(self.config, self.ids, self.blob_name, err) from err

    def close(self) -> None:
        """Stop staging (after commit, or when the push failed: the staged blocks are never committed)."""
        if self.pool is not None:
            for staging in self.in_flight:
                staging.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None
        super().close()


def download(config: BackendConfig, ref: BlobReference) -> bytearray:
    """The blob's bytes, verified against the reference's SHA-256."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    blob = _blob_client(config, ref.container, ref.blob_name)
    try:
        # Never more than the reference's size: the buffer below is sized by it, whatever the blob has become.
        stream = blob.download_blob(
            offset=0,
            length=ref.size_bytes,
            max_concurrency=config.max_concurrency,
        )
        # The whole blob's size, from the first response's Content-Range ("bytes 0-<end>/<size>").
        size = int(stream.properties.content_range.rpartition("/")[2])
        if size != ref.size_bytes:
            raise XComIntegrityError(
                f"XCom blob {ref.uri} is corrupt or was modified: expected {ref.size_bytes} bytes, the blob has "
                f"{size}. Clear and re-run the upstream task to write it again."
            )
        writer = _MemoryWriter(stream.size)
        stream.readinto(writer)
    except ResourceNotFoundError as err:
        raise XComBlobNotFoundError(
            f"XCom blob {ref.uri} does not exist (connection {config.conn_id!r}). It was deleted after the "
            f"value was written (retention sweep, lifecycle rule or by hand) or the connection points at another "
            f"account. Clear and re-run the upstream task to recompute it."
        ) from err
    except AzureError as err:
        raise XComStorageError(
            f"Could not read XCom blob {ref.uri} through connection {config.conn_id!r}: {_short(err)}"
        ) from err
    digest = hashlib.sha256(writer.buffer).hexdigest()
    if digest != ref.sha256 or len(writer.buffer) != ref.size_bytes:
        raise XComIntegrityError(
            f"XCom blob {ref.uri} is corrupt or was modified: expected {ref.size_bytes} bytes with sha256 "
            f"{ref.sha256}, read {len(writer.buffer)} bytes with sha256 {digest}. Clear and re-run the "
            f"upstream task to write it again."
        )
    return writer.buffer


def delete(config: BackendConfig, ref: BlobReference) -> bool:
    """Delete the referenced blob; False when it was already gone."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        _blob_client(config, ref.container, ref.blob_name).delete_blob()
    except ResourceNotFoundError:
        return False
    return True


def _blob_client(config: BackendConfig, container: str, blob_name: str) -> BlobClient:
    return client_of(config).get_blob_client(container, blob_name)


def _short(err: Exception) -> str:
    """The first line of an Azure error: the rest is a dump of headers."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


# ------------------------------------------------------------------------------------------------- backend


class WasbXComBackend(BaseXCom):
    """XCom backend: large values in Azure Blob Storage, a readable reference in the metadata DB."""

    @staticmethod
    def serialize_value(
        value: Any,
        *,
        key: str | None = None,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
    ) -> Any:
        started = time.perf_counter()
        ids = XComIds(
            dag_id=dag_id or "",
            run_id=run_id or "",
            task_id=task_id or "",
            map_index=-1 if map_index is None else map_index,
            key=key or BaseXCom.XCOM_RETURN_KEY,
        )
        try:
            config = BackendConfig.from_airflow()
            if _is_table(value):
                stored = _store_table(config, ids, value)
            else:
                stored = BaseXCom.serialize_value(value)
                if inline_size(stored) > config.threshold:
                    data = encode_json(stored, config.compression)
                    python_type = type(value).__module__ + "." + type(value).__qualname__
                    stored = _offload(config, ids, data, "json", python_type)
        except AzBlobXComError as err:
            _count_error("push", err)
            raise
        if not isinstance(stored, BlobReference):
            _measure("push", None, ids.dag_id, ids.task_id, started)
            return stored
        _measure("push", (stored.format, stored.size_bytes), ids.dag_id, ids.task_id, started)
        return stored.to_json()

    @staticmethod
    def deserialize_value(result: Any) -> Any:
        started = time.perf_counter()
        try:
            ref = BlobReference.from_json(result.value)
            if ref is None:
                value = BaseXCom.deserialize_value(result)
                _measure("pull", None, "", "", started)
                return value
            config = BackendConfig.from_airflow()
            check_owned(config, ref)
            if ref.format == "parquet":  # import the decoder while the blob downloads
                in_background(importlib.import_module, "pyarrow.parquet")
                value = decode_table(download(config, ref), ref.python_type)  # no reference kept: freed early
            else:
                value = decode_json(download(config, ref), ref.compression)
        except AzBlobXComError as err:
            _count_error("pull", err)
            raise
        elapsed = _measure("pull", (ref.format, ref.size_bytes), *producer_of(ref), started)
        log.info("Read XCom from %s (%s, %s) in %.2f s", ref.uri, ref.format, _human(ref.size_bytes), elapsed)
        return value

    @classmethod
    def purge(cls, xcom: Any, *args: Any) -> None:
        """Delete the blob behind a reference; best effort (the retention sweep catches what this misses)."""
        try:
            ref = BlobReference.from_json(getattr(xcom, "value", None))
        except XComReferenceError as err:
            log.warning("Not purging XCom: %s", err)
            metrics.count("azblob_xcom.purges", outcome="refused")
            return
        if ref is None:
            return
        try:
            config = BackendConfig.from_airflow()
            check_owned(config, ref)
        except AzBlobXComError as err:
            log.warning("Not purging XCom blob %s: %s", ref.uri, err)
            metrics.count("azblob_xcom.purges", outcome="refused")
            return
        try:
            deleted = delete(config, ref)
        except Exception as err:  # best effort: a failed purge must not fail the task's new attempt
            log.warning("Could not purge XCom blob %s: %s", ref.uri, _short(err))
            metrics.count("azblob_xcom.purges", outcome="failed")
            return
        log.info("Purged XCom blob %s" if deleted else "XCom blob %s was already gone", ref.uri)
        metrics.count("azblob_xcom.purges", outcome="deleted" if deleted else "gone")


def _measure(direction: str, blob: tuple[str, int] | None, dag_id: str, task_id: str, started: float) -> float:
    """Count one value pushed or pulled; for a blob ((format, size)) also its bytes and the seconds it took (returned).
    dag_id and task_id are the writer's: a pull names the task whose value it read."""
    elapsed = time.perf_counter() - started
    metrics.count("azblob_xcom.values", direction=direction, storage="blob" if blob else "inline")
    if blob:
        fmt, size = blob
        tags = {"dag_id": dag_id or "unknown", "task_id": task_id or "unknown", "direction": direction, "format": fmt}
        metrics.count("azblob_xcom.bytes", size, **tags)
        metrics.seconds("azblob_xcom.duration", elapsed, **tags)
    return elapsed


def _count_error(direction: str, err: AzBlobXComError) -> None:
    metrics.count("azblob_xcom.errors", direction=direction, error=err.metric_label)


def producer_of(ref: BlobReference) -> tuple[str, str]:
    """The dag_id and task_id of the task that wrote a blob, from the name XComIds.blob_name gave it."""
    ids = dict(segment.partition("=")[::2] for segment in ref.blob_name.split("/") if "=" in segment)
    return unquote(ids.get("dag_id", "")), unquote(ids.get("task_id", ""))


def in_background(work: Any, *args: Any) -> threading.Thread:
    """Start ``work(*args)`` in a thread, to overlap what a task's first XCom call pays once (the connection lookup,
    the client, imports) with its own work. Errors are dropped: the caller does the same work again afterwards and
    meets them there, in its own thread."""

    def run() -> None:
        with contextlib.suppress(Exception):
            work(*args)

    thread = threading.Thread(target=run, name="azblob-xcom-warmup", daemon=True)
    thread.start()
    return thread


def _store_table(config: BackendConfig, ids: XComIds, value: Any) -> Any:  # inline form or BlobReference
    """Parquet, written straight into the blob's staged blocks (BlobWriter) unless it is small enough to stay inline."""
    started = time.perf_counter()
    # Arrow encodes without the GIL: build the client (connection lookup, SDK import) meanwhile, unless the table is
    # small enough in memory that it may stay inline (a wrong guess costs time, never correctness).
    warming = in_background(client_of, config) if _nbytes(value) > config.threshold else None
    with BlobWriter(config, ids, ids.blob_name(config.prefix, "parquet"), client_ready=warming) as sink:
        python_type, rows, columns = encode_table(value, config.compression, sink)
        # The inline form is hex-encoded Parquet (about twice these bytes): only a small frame can stay inline.
        if not sink.staged and sink.size <= config.threshold and python_type == "pandas.DataFrame":
            serialized = BaseXCom.serialize_value(value)
            if inline_size(serialized) <= config.threshold:
                return serialized
        if warming:
            warming.join()  # one client: the upload must not build a second one beside it
        shape = {"python_type": python_type, "rows": rows, "columns": columns}
        ref = _reference(config, sink.blob_name, "parquet", size=sink.size, sha256=sink.digest.hexdigest(), **shape)
        sink.commit({"format": "parquet", "sha256": ref.sha256})
    _log_stored(ids, ref, started)
    return ref


def _nbytes(table: Any) -> int:
    """A DataFrame's or Table's size in memory, cheaply (string contents not counted)."""
    if hasattr(table, "memory_usage"):
        return int(table.memory_usage(index=True, deep=False).sum())
    return table.nbytes


def _offload(
    config: BackendConfig,
    ids: XComIds,
    data: Any,
    fmt: str,
    python_type: str,
) -> BlobReference:
    started = time.perf_counter()
    size = len(data) if isinstance(data, bytes) else data.size
    sha256 = hashlib.sha256(memoryview(data)).hexdigest()
    blob_name = ids.blob_name(config.prefix, _extension(fmt, config.compression))
    ref = _reference(config, blob_name, fmt, size=size, sha256=sha256, python_type=python_type)
    upload(config, ref.blob_name, data, ids, {"format": fmt, "sha256": ref.sha256})
    _log_stored(ids, ref, started)
    return ref


def _reference(
    config: BackendConfig,
    blob_name: str,
    fmt: str,
    *,
    size: int,
    sha256: str,
    python_type: str,
    rows: int | None = None,
    columns: int | None = None,
) -> BlobReference:
    return BlobReference(
        container=config.container,
        blob_name=blob_name,
        format=fmt,
        compression=config.compression,
        size_bytes=size,
        sha256=sha256,
        python_type=python_type,
        rows=rows,
        columns=columns,
    )


def _log_stored(ids: XComIds, ref: BlobReference, started: float) -> None:
    shape = f", {ref.rows:,} x {ref.columns}" if ref.rows is not None else ""
    log.info(
        "Stored XCom %r (%s%s, %s %s) at %s in %.2f s",
        ids.key,
        ref.python_type,
        shape,
        ref.format,
        _human(ref.size_bytes),
        ref.uri,
        time.perf_counter() - started,
    )


def _extension(fmt: str, compression: str) -> str:
    if fmt == "parquet" or compression == "none":
        return fmt
    return f"{fmt}.{compression}"


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"
