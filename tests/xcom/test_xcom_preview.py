"""include/xcom_preview.py against a real Azurite: what the api-server's /xcom-preview shows of an XCom, from the
value the metadata DB holds (pushed here by the backend as the Task SDK pushes), read in ranges."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from include import azblob_xcom_backend as backend
from include import xcom_preview, xcom_preview_page
from include.azblob_xcom_backend import WasbXComBackend

IDS = {"key": "return_value", "task_id": "extract", "dag_id": "etl", "run_id": "manual__1", "map_index": -1}


def push(value: Any) -> Any:
    return json.loads(json.dumps(WasbXComBackend.serialize_value(value, **IDS)))


def blob(stored: dict[str, Any]) -> Any:
    return backend.service_client("wasb_default").get_blob_client(*backend.parse_uri(stored["uri"]))


def orders(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows, dtype="int64"),
            "city": pd.Categorical(rng.choice(["Oslo", "Lima", "Pune"], rows)),
            "amount": rng.gamma(2.0, 20.0, rows).round(2),
            "coupon": pd.array(np.where(rng.random(rows) < 0.8, None, rng.integers(5, 50, rows)), "Int64"),
            "at": pd.date_range("2026-01-01", periods=rows, freq="s", tz="Europe/Oslo"),
        }
    )


def test_a_blob_dataframe_shows_its_reference_dtypes_and_first_rows(xcom_env: dict[str, str]) -> None:
    df = orders(5000)
    stored = push(df)
    shown = xcom_preview.preview(stored, rows=10)
    assert (shown.storage, shown.kind, shown.total_rows, shown.truncated) == ("blob", "table", 5000, True)
    assert shown.reference == stored
    assert shown.schema == [{"name": str(c), "dtype": str(t)} for c, t in df.dtypes.items()]
    assert shown.columns == list(df.columns)
    head = df.head(10)
    expected = [[str(i), *map(str, row)] for i, row in zip(head.index, head.itertuples(index=False), strict=True)]
    assert shown.rows == expected
    assert shown.bytes_read <= stored["size_bytes"]


def test_the_bytes_a_preview_reads_do_not_grow_with_the_blob(xcom_env: dict[str, str]) -> None:
    """Frames of 1M and 2M rows as the backend writes them (row groups of 1Mi rows, MBs each): the preview reads the
    footer and each column's first pages, not the row group, so twice the blob is the same read, in a few dozen
    ranged requests (docs/benchmarks/xcom-preview.md measures 10M rows)."""
    read = []
    for rows in (1_000_000, 2_000_000):
        df = orders(rows)
        stored = push(df)
        shown = xcom_preview.preview(stored, rows=100)
        head = df.head(100)
        assert shown.rows == [
            [str(i), *map(str, row)] for i, row in zip(head.index, head.itertuples(index=False), strict=True)
        ]
        assert shown.requests < 40, shown.requests
        read.append((shown.bytes_read, stored["size_bytes"]))
    (small, small_size), (large, large_size) = read
    assert large_size > 1.9 * small_size, read
    assert large < 1.1 * small, read
    assert large < 0.1 * large_size, read


def test_an_inline_dataframe_gets_the_same_view(xcom_env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD", "65536")  # the default
    df = orders(20)
    stored = push(df)
    assert "azblob_xcom_ref" not in stored  # small enough to stay inline (hex-encoded Parquet in the row)
    shown = xcom_preview.preview(stored, rows=5)
    assert (shown.storage, shown.kind, shown.total_rows, len(shown.rows)) == ("inline", "table", 20, 5)
    assert [column["dtype"] for column in shown.schema] == [str(t) for t in df.dtypes]


def test_a_json_blob_shows_its_first_64_kib_and_an_inline_value_its_json(xcom_env: dict[str, str]) -> None:
    stored = push([{"n": i, "text": "x" * 100} for i in range(2000)])
    shown = xcom_preview.preview(stored)
    assert (shown.storage, shown.kind, shown.truncated) == ("blob", "json", True)
    assert shown.text.startswith('[\n  {\n    "n": 0,\n    "text": "xxx')
    assert '"n": 500,' in shown.text  # 64 KiB of ~122-byte items: about 537 of them
    assert '"n": 600,' not in shown.text
    small = xcom_preview.preview(push({"rows": 3}))
    assert (small.storage, small.kind, small.truncated) == ("inline", "value", False)
    assert json.loads(small.text) == {"rows": 3}


@pytest.mark.parametrize(
    "value", [{"a": [1, 2.5, {"b": 'x\\"y,{:'}, [], {}], "c": {"d": None}, "e": "é"}, [], "text", [[[1]], {"k": [{}]}]]
)
def test_compact_json_is_laid_out_as_json_dumps_indent_2(value: Any) -> None:
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert xcom_preview.indented(compact) == json.dumps(value, indent=2, ensure_ascii=False)
    full = json.dumps(value, indent=2, ensure_ascii=False)
    assert xcom_preview.indented(compact) == full
    for cut in range(len(compact)):  # cut anywhere (but just inside an empty [] or {}): the start of the same layout
        if compact[cut - 1 : cut] not in ("{", "["):
            assert full.startswith(xcom_preview.indented(compact[:cut])), compact[:cut]


def test_an_arrow_table_shows_its_arrow_types(xcom_env: dict[str, str]) -> None:
    table = pa.table({"n": pa.array(range(3000), pa.int32()), "s": ["x"] * 3000})
    shown = xcom_preview.preview(push(table), rows=2)
    assert shown.schema == [{"name": "n", "dtype": "int32"}, {"name": "s", "dtype": "string"}]
    assert shown.rows == [["0", "0", "x"], ["1", "1", "x"]]


def test_a_huge_cell_is_cut(xcom_env: dict[str, str]) -> None:
    shown = xcom_preview.preview(push(pd.DataFrame({"blob": ["y" * 100_000] * 3})))
    assert {len(row[1]) for row in shown.rows} == {xcom_preview.CELL_CHARS}
    assert shown.rows[0][1].endswith("…")


def test_the_download_streams_the_blob_as_stored_and_checks_its_checksum(xcom_env: dict[str, str]) -> None:
    stored = push(orders(700_000))  # about 6 MB: two chunks
    _, chunks = xcom_preview.blob_chunks(stored)
    pieces = list(chunks)
    assert len(pieces) == -(-stored["size_bytes"] // xcom_preview.CHUNK_BYTES) > 1
    data = b"".join(pieces)
    assert hashlib.sha256(data).hexdigest() == stored["sha256"]
    assert data == blob(stored).download_blob().readall()
    assert xcom_preview.verify(stored) == {
        "uri": stored["uri"],
        "ok": True,
        "size_bytes": stored["size_bytes"],
        "sha256": stored["sha256"],
    }


def test_the_csv_download_is_the_dataframes_csv_row_group_by_row_group(xcom_env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setattr(backend, "ROW_GROUP_ROWS", 1000)
    df = orders(3500)
    parts = list(xcom_preview.csv_chunks(push(df)))
    assert len(parts) == 4
    assert "".join(parts) == df.to_csv()
    named = df.set_index("order_id")
    assert "".join(xcom_preview.csv_chunks(push(named))) == named.to_csv()


def test_a_tampered_blob_fails_verification_and_its_download_naming_the_blob(xcom_env: dict[str, str]) -> None:
    stored = push(orders(3000))
    client = blob(stored)
    data = bytearray(client.download_blob().readall())
    data[len(data) // 2] ^= 0xFF
    client.upload_blob(bytes(data), overwrite=True)
    result = xcom_preview.verify(stored)
    assert result["ok"] is False
    assert f"XCom blob {stored['uri']} is corrupt or was modified" in result["error"]
    _, chunks = xcom_preview.blob_chunks(stored)
    with pytest.raises(backend.XComIntegrityError, match="corrupt or was modified"):
        b"".join(chunks)


def test_a_missing_or_resized_blob_says_which_blob_and_why(xcom_env: dict[str, str]) -> None:
    missing, resized = push(orders(3000)), push(orders(3000))
    blob(missing).delete_blob()
    blob(resized).upload_blob(b"PAR1", overwrite=True)
    with pytest.raises(backend.XComBlobNotFoundError, match=f"XCom blob {missing['uri']} does not exist"):
        xcom_preview.preview(missing)
    with pytest.raises(backend.XComIntegrityError, match=f"{resized['uri']} is corrupt or was modified: expected"):
        xcom_preview.blob_chunks(resized)


def test_a_reference_outside_the_backends_container_is_refused_before_any_read(xcom_env: dict[str, str]) -> None:
    stored = push(orders(3000))
    forged = {**stored, "uri": "xcom_wasb://airflow-logs/dag_id=etl/task.log"}
    for read in (xcom_preview.preview, xcom_preview.blob_chunks, lambda s: list(xcom_preview.csv_chunks(s))):
        with pytest.raises(backend.XComReferenceError, match="is outside this backend's blobs"):
            read(forged)


def test_an_inline_value_has_no_blob_to_download(xcom_env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="stored inline, in the metadata DB: there is no blob to download"):
        xcom_preview.blob_chunks(push({"rows": 3}))


def test_the_backend_still_reads_what_the_preview_read(xcom_env: dict[str, str]) -> None:
    df = orders(4000)
    stored = push(df)
    xcom_preview.preview(stored)
    pd.testing.assert_frame_equal(WasbXComBackend.deserialize_value(SimpleNamespace(value=stored)), df)


def test_the_page_escapes_every_value_and_links_the_tasks_other_keys(xcom_env: dict[str, str]) -> None:
    stored = push(pd.DataFrame({"<b>col</b>": ["<script>alert(1)</script>"] * 3000}))
    ids = {**IDS, "run_id": "manual__<x>"}
    html = xcom_preview_page.page(ids, ["return_value", "spare"], xcom_preview.preview(stored).as_dict(), None)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<th>&lt;b&gt;col&lt;/b&gt;</th>" in html
    spare = "view?" + urlencode({**ids, "key": "spare"}).replace("&", "&amp;")
    assert "run_id=manual__%3Cx%3E" in spare
    assert f"href='{spare}'" in html
    assert "href='api/download?" in html
    assert "First 100 of 3,000 rows" in html
    error = xcom_preview_page.page(ids, [], None, "XCom blob xcom_wasb://c/<n> does not exist")
    assert "<p class='error'>XCom blob xcom_wasb://c/&lt;n&gt; does not exist</p>" in error


def test_an_inline_value_links_airflows_own_xcom_tab(xcom_env: dict[str, str]) -> None:
    shown = xcom_preview.preview(push({"rows": 3})).as_dict()
    html = xcom_preview_page.page({**IDS, "run_id": "manual__2026-12-05T10:00:00+00:00"}, [], shown, None)
    tab = "../dags/etl/runs/manual__2026-12-05T10%3A00%3A00%2B00%3A00/tasks/extract/xcom"
    assert f"<a href='{tab}' target='_top'>Airflow's XCom tab</a>" in html
    mapped = xcom_preview_page.page({**IDS, "map_index": 3}, [], shown, None)
    assert "href='../dags/etl/runs/manual__1/tasks/extract/mapped/3/xcom'" in mapped


def test_the_rows_shown_follow_preview_rows_unless_the_caller_asks(xcom_env: dict[str, str], monkeypatch) -> None:
    stored = push(orders(5000))
    assert len(xcom_preview.preview(stored).rows) == 100  # the default
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__PREVIEW_ROWS", "7")
    assert len(xcom_preview.preview(stored).rows) == 7
    assert len(xcom_preview.preview(stored, rows=3).rows) == 3
    assert len(xcom_preview.preview(stored, rows=5000).rows) == backend.PREVIEW_MAX_ROWS
