"""What an XCom holds, without downloading it: the reference, the schema and the first rows of a DataFrame the Blob
backend stored, read with ranged requests (the Parquet footer, then each column's pages until the rows shown are
decoded), so that the time, the bytes read and the memory do not grow with the blob; and the blob itself streamed as
a download.

The api-server serves it (include/plugins/xcom_preview.py, under /xcom-preview); everything here takes the XCom's
stored value (the metadata DB's JSON) and never a blob path from a client: a reference outside the backend's
container and prefix is refused as a pull would refuse it (check_owned).

What a preview shows, by what the XCom holds:
* a DataFrame or Arrow Table in a Parquet blob: the reference, each column's dtype as pandas restores it, the first
  rows; the blob's size is checked against the reference (the SHA-256 can only be checked by reading it all: the
  download and verify endpoints do);
* a value in a JSON blob: the reference and the first 64 KiB of its decompressed JSON, laid out as indent=2;
* an inline DataFrame (hex-encoded Parquet in the DB row): the same schema and rows view;
* any other inline value: its JSON as the DB holds it, cut at 64 KiB.
Every cell is shown as text, cut at CELL_CHARS characters.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from include.azblob_xcom_backend import (
    PREVIEW_MAX_ROWS,
    BackendConfig,
    BlobReference,
    XComBlobNotFoundError,
    XComIntegrityError,
    XComStorageError,
    _short,
    check_owned,
    client_of,
    frame_of,
)

CELL_CHARS = 200
TEXT_BYTES = 64 * 1024
CHUNK_BYTES = 4 * 1024 * 1024  # a download's pieces: memory per request stays at this, whatever the blob's size
WHOLE_BELOW = 1024 * 1024  # a Parquet blob this small is read in one request: its footer and data overlap anyway
STREAM_BYTES = 64 * 1024  # a larger one is read a column's pages at a time, in ranged reads of this size


class RangedBlob(io.RawIOBase):
    """A read-only, seekable file over one blob of a known size: each read is one ranged GET. Counts what it read."""

    def __init__(self, config: BackendConfig, ref: BlobReference) -> None:
        self.config = config
        self.ref = ref
        self.blob = client_of(config).get_blob_client(ref.container, ref.blob_name)
        self.size = ref.size_bytes
        self.position = 0
        self.bytes_read = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self.size - self.position)
        if length <= 0:
            return 0
        data = self.read_range(self.position, length)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def read_range(self, offset: int, length: int) -> bytes:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            stream = self.blob.download_blob(offset=offset, length=length)
            if self.requests == 0:  # the whole blob's size, from the first answer's Content-Range
                size = int(stream.properties.content_range.rpartition("/")[2])
                if size != self.ref.size_bytes:
                    raise XComIntegrityError(
                        f"XCom blob {self.ref.uri} is corrupt or was modified: expected {self.ref.size_bytes} bytes, "
                        f"the blob has {size}. Clear and re-run the upstream task to write it again."
                    )
            data = stream.readall()
        except ResourceNotFoundError as err:
            raise XComBlobNotFoundError(
                f"XCom blob {self.ref.uri} does not exist (connection {self.config.conn_id!r}): it was deleted after "
                f"the value was written (retention sweep, lifecycle rule or by hand). Clear and re-run the upstream "
                f"task to recompute it."
            ) from err
        except AzureError as err:
            raise XComStorageError(f"Could not read XCom blob {self.ref.uri}: {_short(err)}") from err
        self.requests += 1
        self.bytes_read += len(data)
        return data


@dataclass
class Preview:
    storage: str  # blob or inline
    kind: str  # table, json or value
    reference: dict[str, Any] | None = None
    schema: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    index: list[str] = field(default_factory=list)  # the index names of the rows shown (one entry per level)
    rows: list[list[str]] = field(default_factory=list)  # index values, then the columns, as text
    total_rows: int | None = None
    text: str | None = None
    truncated: bool = False  # fewer rows or bytes shown than the value has
    bytes_read: int = 0  # from Blob storage, for this preview
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def preview(stored: Any, rows: int | None = None, config: BackendConfig | None = None) -> Preview:
    """The preview of an XCom whose DB value is ``stored`` (the JSON the metadata DB holds), with its first ``rows``
    rows ([azblob_xcom] preview_rows when not given, at most PREVIEW_MAX_ROWS)."""
    config = config or BackendConfig.from_airflow()
    rows = min(rows or config.preview_rows, PREVIEW_MAX_ROWS)
    ref = BlobReference.from_json(stored)
    if ref is None:
        return _inline(stored, rows)
    check_owned(config, ref)
    source = RangedBlob(config, ref)
    shown = _table_head(source, ref, rows) if ref.format == "parquet" else _json_head(source, ref)
    shown.reference = ref.to_json()
    shown.bytes_read, shown.requests = source.bytes_read, source.requests
    return shown


def _table_head(source: RangedBlob, ref: BlobReference, rows: int) -> Preview:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if ref.size_bytes <= WHOLE_BELOW:
        parquet = pq.ParquetFile(pa.BufferReader(source.read_range(0, ref.size_bytes)))
    else:  # the footer, then each column's pages only until the rows shown are decoded (STREAM_BYTES at a time)
        parquet = pq.ParquetFile(source, buffer_size=STREAM_BYTES, pre_buffer=False)
    batches: list[Any] = []
    for batch in parquet.iter_batches(batch_size=rows, use_threads=False, use_pandas_metadata=True):
        batches.append(batch)
        if sum(b.num_rows for b in batches) >= rows:
            break
    head = pa.Table.from_batches(batches) if batches else parquet.schema_arrow.empty_table()  # empty: the schema
    return _frame_view(frame_of(head.slice(0, rows), ref.python_type), parquet.metadata.num_rows, "blob")


def _json_head(source: RangedBlob, ref: BlobReference) -> Preview:
    import pyarrow as pa

    raw: Any = source
    if ref.compression != "none":
        raw = pa.CompressedInputStream(pa.PythonFile(source, mode="r"), ref.compression)
    data = raw.read(TEXT_BYTES + 1)
    text = bytes(data[:TEXT_BYTES]).decode(errors="ignore")  # ignore: a character the cut split in two
    return Preview("blob", "json", text=indented(text), truncated=len(data) > TEXT_BYTES)


def indented(text: str, step: str = "  ") -> str:
    """Compact JSON laid out as json.dumps(indent=2) lays it out, even when it is cut off anywhere (so it cannot be
    parsed): a line per member and item, strings left as they are."""
    out: list[str] = []
    depth, in_string, escaped = 0, False, False
    for position, char in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
            out.append(char)
        elif char == '"':
            in_string = True
            out.append(char)
        elif char in "{[":
            depth += 1
            empty = text[position + 1 : position + 2] in ("}", "]")
            out.append(char if empty else char + "\n" + step * depth)
        elif char in "}]":
            depth -= 1
            empty = text[position - 1 : position] in ("{", "[")
            out.append(char if empty else "\n" + step * max(depth, 0) + char)
        elif char == ",":
            out.append(",\n" + step * depth)
        elif char == ":":
            out.append(": ")
        else:
            out.append(char)
    return "".join(out)


def _inline(stored: Any, rows: int) -> Preview:
    """An inline value: a DataFrame (Airflow's serde keeps it as hex-encoded Parquet) gets the table view."""
    if isinstance(stored, dict) and stored.get("__classname__") == "pandas.DataFrame":
        from airflow.sdk.serde import deserialize

        with contextlib.suppress(ValueError, TypeError, ImportError):  # not decodable here: shown as its JSON
            df = deserialize(stored)
            return _frame_view(df.head(rows), len(df), "inline")
    text = json.dumps(stored, indent=2, default=str)
    return Preview("inline", "value", text=text[:TEXT_BYTES], truncated=len(text) > TEXT_BYTES)


def _frame_view(head: Any, total: int, storage: str) -> Preview:
    """The schema and rows of ``head`` (a DataFrame, or an Arrow Table for a pyarrow.Table XCom: its Arrow types)."""
    if hasattr(head, "dtypes"):
        schema = [{"name": str(name), "dtype": str(dtype)} for name, dtype in head.dtypes.items()]
    else:
        schema = [{"name": column.name, "dtype": str(column.type)} for column in head.schema]
        head = head.to_pandas()
    index_names = [str(name) if name is not None else "" for name in head.index.names]
    rows = [
        [_cell(value) for value in (index if isinstance(index, tuple) else (index,))] + [_cell(v) for v in values]
        for index, values in zip(head.index, head.itertuples(index=False, name=None), strict=True)
    ]
    return Preview(
        storage,
        "table",
        schema=schema,
        columns=[str(column) for column in head.columns],
        index=index_names,
        rows=rows,
        total_rows=total,
        truncated=len(rows) < total,
    )


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def blob_chunks(stored: Any, config: BackendConfig | None = None) -> tuple[BlobReference, Iterator[bytes]]:
    """The reference of a stored blob value and its bytes, CHUNK_BYTES at a time, each read when the last was sent.
    The first is read here, so that a missing, resized or unreachable blob raises before a response starts; the
    iterator raises XComIntegrityError at the end when the bytes do not match the SHA-256 recorded at write time
    (all a streamed response can do then: the client sees it cut off)."""
    ref = _blob_reference(stored, config)
    source = RangedBlob(config or BackendConfig.from_airflow(), ref)
    first = source.read_range(0, min(CHUNK_BYTES, ref.size_bytes))

    def chunks() -> Iterator[bytes]:
        digest = hashlib.sha256(first)
        yield first
        for offset in range(len(first), ref.size_bytes, CHUNK_BYTES):
            data = source.read_range(offset, min(CHUNK_BYTES, ref.size_bytes - offset))
            digest.update(data)
            yield data
        if digest.hexdigest() != ref.sha256:
            raise XComIntegrityError(
                f"XCom blob {ref.uri} is corrupt or was modified: its SHA-256 is {digest.hexdigest()}, the reference "
                f"says {ref.sha256}. Clear and re-run the upstream task to write it again."
            )

    return ref, chunks()


def csv_chunks(stored: Any, config: BackendConfig | None = None) -> Iterator[str]:
    """A Parquet blob's DataFrame as CSV (the index first, as DataFrame.to_csv writes it), one row group at a time:
    memory stays at one row group's, whatever the blob's size."""
    import pandas as pd
    import pyarrow.parquet as pq

    ref = _blob_reference(stored, config)
    if ref.format != "parquet":
        raise ValueError(f"XCom blob {ref.uri} holds {ref.format}, not a table: download it as stored instead")
    parquet = pq.ParquetFile(RangedBlob(config or BackendConfig.from_airflow(), ref))
    # A default (range) index is kept as start/stop/step, not as a column: pandas gives each row group's rows 0..n,
    # so the rows before this group set where its index starts.
    index = (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
    steps = next((c for c in index if isinstance(c, dict) and c.get("kind") == "range"), None)
    if parquet.metadata.num_row_groups == 0:  # an empty frame: its header alone
        yield frame_of(parquet.schema_arrow.empty_table(), "pandas.DataFrame").to_csv()
    before = 0
    for group in range(parquet.metadata.num_row_groups):
        part = frame_of(parquet.read_row_group(group, use_pandas_metadata=True), "pandas.DataFrame")
        if steps is not None:
            start = steps["start"] + before * steps["step"]
            part.index = pd.RangeIndex(start, start + len(part) * steps["step"], steps["step"], name=steps["name"])
        yield part.to_csv(header=before == 0)
        before += len(part)


def _blob_reference(stored: Any, config: BackendConfig | None) -> BlobReference:
    ref = BlobReference.from_json(stored)
    if ref is None:
        raise ValueError("this XCom is stored inline, in the metadata DB: there is no blob to download")
    check_owned(config or BackendConfig.from_airflow(), ref)
    return ref


def verify(stored: Any, config: BackendConfig | None = None) -> dict[str, Any]:
    """Read the whole blob (CHUNK_BYTES at a time) and compare its SHA-256 with the reference's."""
    ref, chunks = blob_chunks(stored, config)
    try:
        size = sum(len(chunk) for chunk in chunks)
    except XComIntegrityError as err:
        return {"uri": ref.uri, "ok": False, "error": str(err)}
    return {"uri": ref.uri, "ok": True, "size_bytes": size, "sha256": ref.sha256}
