"""Contract tests of include/azblob_xcom_backend.py against a real Azurite (no mocks).

Each test calls the backend the way the Task SDK does: ``serialize_value(value, key=..., ...)`` for a push, then
``deserialize_value(result)`` with an object whose ``.value`` is what the metadata DB returned (JSON round trip).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
import uuid
import weakref
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from airflow.sdk.bases.xcom import BaseXCom
from azure.storage.blob import BlobServiceClient

from include import azblob_xcom_backend as backend
from include.azblob_xcom_backend import WasbXComBackend
from scripts.devstack.services import AZURITE_ACCOUNT, AZURITE_KEY, azurite_connection_string, free_port
from tests.support.airflow import wasb_connection

IDS = {"key": "return_value", "task_id": "extract", "dag_id": "etl", "run_id": "manual__2026-01-01T00:00:00+00:00"}


def push(value: Any, **ids: Any) -> Any:
    """serialize_value as the Task SDK calls it; the result goes through JSON like the DB row does."""
    stored = WasbXComBackend.serialize_value(value, **{**IDS, "map_index": -1, **ids})
    return json.loads(json.dumps(stored))


def pull(stored: Any) -> Any:
    return WasbXComBackend.deserialize_value(SimpleNamespace(value=stored))


def blob_client(azurite, ref: dict[str, Any]):
    container, name = backend.parse_uri(ref["uri"])
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)


def rich_frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    df = pd.DataFrame(
        {
            "id": np.arange(rows),
            "price": rng.random(rows),
            "label": pd.Series(rng.choice(["a", "b", None], rows), dtype="str"),
            "kind": pd.Categorical(rng.choice(["x", "y"], rows), categories=["y", "x"], ordered=True),
            "at": pd.date_range("2026-03-29", periods=rows, freq="min", tz="Europe/Amsterdam"),
            "count": pd.array(np.where(rng.random(rows) > 0.8, None, rng.integers(0, 9, rows)), dtype="Int64"),
            "flag": rng.random(rows) > 0.5,
        }
    )
    df.attrs = {"source": "unit-test", "version": 3}
    return df


FRAMES = {
    "mixed dtypes and attrs": rich_frame(),
    "MultiIndex rows": rich_frame().set_index(["kind", "id"]),
    "named string index": rich_frame().set_index("label"),
    "MultiIndex columns": pd.DataFrame(
        np.arange(6000.0).reshape(1000, 6), columns=pd.MultiIndex.from_product([["a", "b"], [1, 2, 3]])
    ),
    "empty with dtypes": rich_frame().iloc[0:0],
    "non-string column names": pd.DataFrame({1: np.arange(3000), 2.5: np.ones(3000)}),
    "time series with a daily freq index": pd.DataFrame(
        {"value": np.arange(3000.0)}, index=pd.date_range("2020-01-01", periods=3000, freq="D", name="day")
    ),
    "categoricals of ints, unused and empty categories": pd.DataFrame(
        {
            "ints": pd.Categorical([3, 1] * 1500, categories=[1, 2, 3]),
            "unused": pd.Categorical(["a"] * 3000, categories=["c", "b", "a"], ordered=True),
            "stamps": pd.Categorical(list(pd.date_range("2026-01-01", periods=3000, freq="h", tz="UTC"))),
        }
    ),
}


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", FRAMES)
def test_dataframe_round_trip_is_exact(xcom_env, name):
    df = FRAMES[name]
    stored = push(df)
    if len(df):
        assert stored["format"] == "parquet"
    back = pull(stored)
    pd.testing.assert_frame_equal(back, df, check_exact=True, check_freq=True)
    assert back.attrs == df.attrs


def test_pyarrow_table_round_trip_is_exact_even_when_small(xcom_env):
    table = pa.table({"a": [1, 2, None], "b": ["x", "y", "z"]}, metadata={b"origin": b"unit"})
    stored = push(table)
    assert stored["type"] == "pyarrow.Table"
    assert pull(stored).equals(table, check_metadata=True)


def test_large_value_goes_to_one_compressed_json_blob(xcom_env, azurite):
    value = [{"n": i, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)} for i in range(500)]
    stored = push(value)
    assert stored["format"] == "json"
    assert stored["compression"] == "zstd"
    assert stored["uri"].endswith(".json.zstd")
    assert pull(stored) == value
    props = blob_client(azurite, stored).get_blob_properties()
    assert props.size == stored["size_bytes"]
    assert props.content_settings.content_type == "application/json"


@pytest.mark.parametrize("codec", backend.CODECS)
def test_every_compression_codec_round_trips(xcom_env, monkeypatch, codec):
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__COMPRESSION", codec)
    df = rich_frame(500)
    text = "payload " * 1000
    frame_ref, text_ref = push(df), push(text)
    assert frame_ref["compression"] == text_ref["compression"] == codec
    pd.testing.assert_frame_equal(pull(frame_ref), df)
    assert pull(text_ref) == text


# --------------------------------------------------------------------------------------------- threshold


def test_small_values_stay_inline_exactly_as_base_xcom_stores_them(xcom_env, monkeypatch):
    monkeypatch.delenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD")  # the default, 64 KiB
    small_frame = pd.DataFrame({"a": [1, 2]})
    for value in ({"rows": 3, "ok": True}, "hello", 42, None, [1, 2, 3], dt.date(2026, 1, 2), small_frame):
        stored = push(value)
        assert stored == json.loads(json.dumps(BaseXCom.serialize_value(value)))
        result = pull(stored)
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(result, value)
        else:
            assert result == value


def test_a_pull_drops_the_downloaded_bytes_before_it_builds_the_dataframe(xcom_env, monkeypatch):
    """The conversion to pandas is when a pull needs the most memory: the compressed bytes are gone by then."""
    import pandas.io._util as pandas_util

    class Tracked(bytearray):  # a bytearray that can be watched with a weak reference
        pass

    real_download, real_convert, seen = backend.download, pandas_util.arrow_table_to_pandas, {}

    def download(config, ref):
        data = Tracked(real_download(config, ref))
        seen["bytes"] = weakref.ref(data)
        return data

    def convert(table, **kwargs):
        seen["alive at conversion"] = seen["bytes"]() is not None
        return real_convert(table, **kwargs)

    monkeypatch.setattr(backend, "download", download)
    monkeypatch.setattr(pandas_util, "arrow_table_to_pandas", convert)
    df = FRAMES["mixed dtypes and attrs"]
    back = pull(push(df))
    assert seen["alive at conversion"] is False
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs == df.attrs


def test_a_frame_that_stays_inline_builds_no_blob_client_and_a_large_one_builds_one(xcom_env, monkeypatch):
    """The first push builds the client beside the Parquet encode only for a frame that will likely go to Blob:
    a small one stored inline pays no connection lookup; a large one gets exactly one client."""
    monkeypatch.delenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD")  # the default, 64 KiB
    backend.service_client.cache_clear()
    assert "azblob_xcom_ref" not in json.dumps(push(pd.DataFrame({"a": [1, 2]})))  # inline
    assert backend.service_client.cache_info().currsize == 0
    assert "azblob_xcom_ref" in push(pd.DataFrame({"a": range(100_000)}))
    info = backend.service_client.cache_info()
    assert (info.currsize, info.misses) == (1, 1)


def test_threshold_is_inclusive_on_the_inline_json_size(xcom_env, monkeypatch):
    value = "x" * 100
    size = backend.inline_size(BaseXCom.serialize_value(value))
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD", str(size))
    assert push(value) == value
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD", str(size - 1))
    assert push(value)["format"] == "json"


def test_threshold_zero_offloads_every_value(xcom_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__THRESHOLD", "0")
    stored = push(1)
    assert stored["format"] == "json"
    assert pull(stored) == 1


def test_plain_dict_that_looks_like_a_reference_is_an_ordinary_value(xcom_env):
    value = {"uri": "xcom_wasb://c/b", "format": "parquet", "size_bytes": 1}
    assert pull(push(value)) == value


# ---------------------------------------------------------------------------------- reference and blob


def test_reference_is_readable_json_with_location_format_size_and_shape(xcom_env, azurite):
    df = rich_frame(5000)
    stored = push(df)
    assert set(stored) == {
        "azblob_xcom_ref", "uri", "format", "compression", "size_bytes", "sha256", "type", "rows", "columns",
    }  # fmt: skip
    assert stored["uri"].startswith(f"xcom_wasb://{xcom_env['AIRFLOW__AZBLOB_XCOM__CONTAINER']}/")
    assert (stored["format"], stored["type"], stored["rows"], stored["columns"]) == (
        "parquet", "pandas.DataFrame", 5000, 7,
    )  # fmt: skip
    assert not any(key.startswith("__") for key in stored)  # serde's reserved keys
    props = blob_client(azurite, stored).get_blob_properties()
    assert props.size == stored["size_bytes"]
    assert props.content_settings.content_type == "application/vnd.apache.parquet"


def test_blob_name_and_metadata_record_every_xcom_id(xcom_env, azurite, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__PREFIX", "/team-a/xcom/")
    stored = push(rich_frame(3000), key="features", map_index=4)
    _, name = backend.parse_uri(stored["uri"])
    assert name.startswith(
        "team-a/xcom/dag_id=etl/run_id=manual__2026-01-01T00%3A00%3A00%2B00%3A00/task_id=extract/map_index=4/"
        "key=features/"
    )
    metadata = blob_client(azurite, stored).get_blob_properties().metadata
    assert backend.metadata_ids(metadata) == {
        "dag_id": "etl", "run_id": IDS["run_id"], "task_id": "extract", "map_index": "4", "key": "features",
    }  # fmt: skip
    assert metadata["sha256"] == stored["sha256"]


def test_ids_cannot_add_path_levels_and_non_ascii_survives_metadata(xcom_env, azurite):
    stored = push(rich_frame(3000), run_id="../../other/ränder", key="a/b")
    _, name = backend.parse_uri(stored["uri"])
    assert "/../" not in name
    assert "run_id=..%2F..%2Fother%2Fr%C3%A4nder/" in name
    assert "key=a%2Fb/" in name
    metadata = blob_client(azurite, stored).get_blob_properties().metadata
    assert backend.metadata_ids(metadata)["run_id"] == "../../other/ränder"


def test_every_push_gets_its_own_blob(xcom_env):
    df = rich_frame(3000)
    assert push(df)["uri"] != push(df)["uri"]


def test_a_large_table_is_staged_in_blocks_as_it_is_encoded(xcom_env, azurite):
    """Past one block the Parquet writer's bytes go out as 8 MiB blocks while the next row group is encoded; the blob
    is the committed list of them, with the SHA-256 of all the bytes."""
    rng = np.random.default_rng(1)
    table = pa.table({"noise": pa.array([rng.bytes(1 << 20) for _ in range(70)], pa.binary())})
    stored = push(table)
    assert stored["size_bytes"] > 64 * 1024 * 1024
    client = blob_client(azurite, stored)
    blocks = client.get_block_list("committed")[0]
    assert [block.size for block in blocks[:-1]] == [backend.STAGED_BLOCK_BYTES] * (len(blocks) - 1)
    assert sum(block.size for block in blocks) == stored["size_bytes"]
    assert hashlib.sha256(client.download_blob().readall()).hexdigest() == stored["sha256"]
    assert client.get_blob_properties().metadata["sha256"] == stored["sha256"]
    assert pull(stored).equals(table)


def test_a_push_that_fails_half_way_leaves_no_blob(xcom_env, azurite, monkeypatch):
    """The container is deleted, with the blocks staged so far, while the frame is still being encoded: the push
    fails naming the blob, and no blob is left (a block blob exists only once its block list is committed)."""
    container = f"half-way-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__CONTAINER", container)
    monkeypatch.setattr(backend, "STAGED_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(backend, "ROW_GROUP_ROWS", 20_000)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    stage = backend.BlobWriter._stage

    def stage_then_drop_the_container(writer: backend.BlobWriter, block: bytes) -> None:
        stage(writer, block)
        if len(writer.block_ids) == 2:
            while writer.in_flight:
                writer._settle(writer.in_flight.popleft())
            service.delete_container(container)

    monkeypatch.setattr(backend.BlobWriter, "_stage", stage_then_drop_the_container)
    with pytest.raises(
        backend.XComStorageError,
        match=rf"Could not upload XCom 'return_value' of etl\.extract .* to xcom_wasb://{container}/",
    ):
        push(rich_frame(300_000))
    left = service.get_container_client(container)
    assert not left.exists() or not list(left.list_blobs())


def test_missing_container_is_created(xcom_env, azurite, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__CONTAINER", "created-on-first-use")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert not service.get_container_client("created-on-first-use").exists()
    pd.testing.assert_frame_equal(pull(push(rich_frame(3000))), rich_frame(3000))
    assert service.get_container_client("created-on-first-use").exists()


def test_account_url_and_credential_connection_works_without_code_changes(xcom_env, azurite, monkeypatch):
    """The non-connection-string path of WasbHook (account URL + credential), used in production with
    DefaultAzureCredential; here with the account key since Azurite has no Entra ID."""
    url = f"http://127.0.0.1:{azurite.port}/{AZURITE_ACCOUNT}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WASB_ACCOUNT_URL",
        json.dumps({"conn_type": "wasb", "host": url, "login": AZURITE_ACCOUNT, "password": AZURITE_KEY}),
    )
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__CONN_ID", "wasb_account_url")
    df = rich_frame(3000)
    pd.testing.assert_frame_equal(pull(push(df)), df)


def client_in_fresh_process(conn_id: str) -> bool:
    """Build the backend's client for ``conn_id`` in a fresh process, list the containers through it, and tell
    whether that imported the WASB hook."""
    code = (
        "import sys, include.azblob_xcom_backend as b\n"
        f"list(b.service_client({conn_id!r}).list_containers())\n"
        "print('airflow.providers.microsoft.azure.hooks.wasb' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "True"


def test_a_connection_string_connection_is_served_without_importing_the_wasb_hook(xcom_env, azurite, monkeypatch):
    """A task's first XCom pays for the imports: a bare connection string needs only azure-storage-blob, while a
    connection with any other setting goes through WasbHook, which knows them all."""
    assert not client_in_fresh_process("wasb_default")
    extra = {"connection_string": azurite.connection_string, "proxies": {}}
    monkeypatch.setenv("AIRFLOW_CONN_WASB_WITH_PROXIES", json.dumps({"conn_type": "wasb", "extra": extra}))
    assert client_in_fresh_process("wasb_with_proxies")


def test_sdk_client_options_beside_a_connection_string_reach_the_client_still_without_the_wasb_hook(
    xcom_env, azurite, monkeypatch
):
    """azure.connection.clientOptions (the kind profile's backoff) ride in the connection's extra: the backend's
    client retries on their schedule, and builds without WasbHook all the same."""
    extra = {"connection_string": azurite.connection_string, "initial_backoff": 1, "increment_base": 2}
    monkeypatch.setenv("AIRFLOW_CONN_WASB_TUNED", json.dumps({"conn_type": "wasb", "extra": extra}))
    code = (
        "import sys, include.azblob_xcom_backend as b\n"
        "policy = b.service_client('wasb_tuned')._config.retry_policy\n"
        "hooked = 'airflow.providers.microsoft.azure.hooks.wasb' in sys.modules\n"
        "print(policy.initial_backoff, policy.increment_base, hooked)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].split() == ["1", "2", "False"]


# ------------------------------------------------------------------------------------------ error paths


def test_mixed_type_column_fails_naming_the_column_and_the_fix(xcom_env):
    df = pd.DataFrame({"ok": range(3), "mixed": [1, "two", 3.0]})
    with pytest.raises(backend.XComSerializationError, match=r"'mixed' \(float, int, str\).*astype\(str\)"):
        push(df)


def test_missing_blob_raises_with_blob_uri(xcom_env, azurite):
    stored = push(rich_frame(3000))
    blob_client(azurite, stored).delete_blob()
    with pytest.raises(backend.XComBlobNotFoundError, match=re.escape(f"{stored['uri']} does not exist")):
        pull(stored)


def test_tampered_blob_raises_integrity_error_naming_the_blob(xcom_env, azurite):
    stored = push(rich_frame(3000))
    blob = blob_client(azurite, stored)
    data = bytearray(blob.download_blob().readall())
    data[100] ^= 0xFF
    blob.upload_blob(bytes(data), overwrite=True)
    with pytest.raises(backend.XComIntegrityError, match=re.escape(f"{stored['uri']} is corrupt or was modified")):
        pull(stored)


@pytest.mark.parametrize("change", ["appended", "truncated"])
def test_a_blob_whose_size_changed_is_refused_before_its_bytes_are_read(xcom_env, azurite, change):
    stored = push("x" * 50_000)
    blob = blob_client(azurite, stored)
    data = blob.download_blob().readall()
    blob.upload_blob((data + b"\0" * 7) if change == "appended" else data[:-7], overwrite=True)
    size = len(data) + (7 if change == "appended" else -7)
    expected = f"{stored['uri']} is corrupt or was modified: expected {len(data)} bytes, the blob has {size}"
    with pytest.raises(backend.XComIntegrityError, match=re.escape(expected)):
        pull(stored)


@pytest.mark.parametrize(
    "case",
    [
        ("logs", "dag_id=etl/attempt=1.log", "dag_id=etl/attempt=1.log"),  # another container: task logs
        ("xcom", "elsewhere/value.json.zst", "elsewhere/value.json.zst"),  # outside the prefix
        ("xcom", "elsewhere/value.json.zst", "team-a/../elsewhere/value.json.zst"),  # back out of it
    ],
    ids=["another container", "outside the prefix", "back out of the prefix"],
)
def test_a_reference_outside_the_backends_container_or_prefix_is_neither_read_nor_purged(
    xcom_env, azurite, monkeypatch, caplog, case
):
    """A forged reference to a blob that exists there, size and hash right: refused, the blob kept."""
    container, blob_name, referenced_as = case
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__PREFIX", "team-a")
    stored = push("x" * 50_000)
    data = blob_client(azurite, stored).download_blob().readall()
    xcom_container = xcom_env["AIRFLOW__AZBLOB_XCOM__CONTAINER"]
    container = xcom_container if container == "xcom" else f"logs-{uuid.uuid4().hex[:12]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    if container != xcom_container:
        service.create_container(container)
    target = service.get_blob_client(container, blob_name)
    target.upload_blob(data)
    forged = {**stored, "uri": f"{backend.URI_SCHEME}{container}/{referenced_as}"}
    refused = f"XCom reference {forged['uri']} is outside this backend's blobs "
    refused += f"(xcom_wasb://{xcom_container}/team-a/...): refused"
    with pytest.raises(backend.XComReferenceError, match=re.escape(refused)):
        pull(forged)
    with caplog.at_level("WARNING", logger="include.azblob_xcom_backend"):
        WasbXComBackend.purge(SimpleNamespace(value=forged))
    assert f"Not purging XCom blob {forged['uri']}" in caplog.text
    assert target.exists()


def test_a_value_written_before_the_container_changed_says_to_set_it_back(xcom_env, monkeypatch):
    stored = push("x" * 50_000)
    monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__CONTAINER", "xcom-moved")
    with pytest.raises(backend.XComReferenceError, match=r"If \[azblob_xcom\] container or prefix changed"):
        pull(stored)


@pytest.fixture
def storage_down(monkeypatch):
    """From here on the backend's connection points at a port nothing listens on (no retries: fail fast)."""

    def switch() -> None:
        conn_id = f"wasb_down_{uuid.uuid4().hex[:8]}"  # a new id: the client cache is per connection id
        connection = wasb_connection(azurite_connection_string("127.0.0.1", free_port()))
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection)
        monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__CONN_ID", conn_id)
        monkeypatch.setenv("AIRFLOW__AZBLOB_XCOM__RETRIES", "0")

    return switch


def test_unreachable_storage_on_read_raises_naming_reference_and_connection(xcom_env, storage_down):
    stored = push(rich_frame(3000))
    storage_down()
    read_error = f"Could not read XCom blob {stored['uri']} through connection 'wasb_down_"
    with pytest.raises(backend.XComStorageError, match=re.escape(read_error)):
        pull(stored)
    with pytest.raises(backend.XComStorageError, match=r"Could not upload XCom 'return_value' of etl\.extract"):
        push(rich_frame(3000))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"azblob_xcom_ref": 2}, "unsupported reference version 2"),
        ({"uri": "wasb://c/b"}, "uri must start with xcom_wasb://"),
        ({"uri": "xcom_wasb://only-container"}, "uri must be xcom_wasb://<container>/<blob name>"),
        ({"format": "pickle"}, "unknown format 'pickle'"),
        ({"compression": "gz"}, "unknown compression 'gz'"),
        ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"size_bytes": "12"}, "size_bytes must be a whole number"),
        ({"size_bytes": 0}, "size_bytes must be a whole number above 0"),
        ({"sha256": None}, "sha256 must be 64 hex digits"),
    ],
)
def test_unknown_reference_shapes_raise_a_reference_error(xcom_env, change, message):
    stored = push(rich_frame(3000))
    with pytest.raises(backend.XComReferenceError, match=message):
        pull({**stored, **change})


def test_reference_without_required_field_raises_a_reference_error(xcom_env):
    stored = push(rich_frame(3000))
    del stored["sha256"]
    with pytest.raises(backend.XComReferenceError, match="'sha256'"):
        pull(stored)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("THRESHOLD", "64k", r"\[azblob_xcom\] threshold .* must be a whole number >= 0; got '64k'"),
        ("THRESHOLD", "-1", r"threshold .* got '-1'"),
        ("COMPRESSION", "gz", r"compression .* must be one of zstd, lz4, gzip, brotli, none; got 'gz'"),
        ("CONTAINER", "XCom_Data", r"container .* valid Azure container name .* got 'XCom_Data'"),
        ("CONTAINER", "a--b", r"got 'a--b'"),
        ("MAX_CONCURRENCY", "0", r"max_concurrency .* >= 1; got '0'"),
        ("RETRIES", "many", r"retries .* got 'many'"),
        ("PREVIEW_ROWS", "5000", r"preview_rows .* must be a whole number from 1 to 1000; got '5000'"),
        ("CONN_ID", " ", r"conn_id \(env AIRFLOW__AZBLOB_XCOM__CONN_ID\) is empty"),
    ],
)
def test_bad_config_values_raise_naming_the_setting(xcom_env, monkeypatch, option, value, message):
    monkeypatch.setenv(f"AIRFLOW__AZBLOB_XCOM__{option}", value)
    with pytest.raises(backend.XComConfigError, match=message):
        push(rich_frame(3000))


# ------------------------------------------------------------------------------------------------ safety


def test_blob_content_never_instantiates_classes_outside_the_allowed_list(xcom_env, azurite):
    """A JSON blob that names an arbitrary class (here subprocess.Popen) must not be instantiated."""
    stored = push("x" * 5000)
    evil = json.dumps({"__classname__": "subprocess.Popen", "__version__": 1, "__data__": ["touch /tmp/x"]})
    data = backend.encode_json(json.loads(evil), "zstd")
    blob_client(azurite, stored).upload_blob(data, overwrite=True)
    forged = {**stored, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    with pytest.raises(ImportError, match=r"subprocess\.Popen was not found in allow list"):
        pull(forged)


def test_values_serde_cannot_encode_are_refused_not_pickled(xcom_env):
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Cannot serialize object of type"):
        push(Opaque())


# ----------------------------------------------------------------------------------------------- purge


def test_purge_deletes_the_referenced_blob(xcom_env, azurite):
    stored = push(rich_frame(3000))
    WasbXComBackend.purge(SimpleNamespace(value=stored))
    assert not blob_client(azurite, stored).exists()


def test_purge_of_a_missing_blob_or_inline_value_is_not_an_error(xcom_env, azurite, caplog):
    stored = push(rich_frame(3000))
    blob_client(azurite, stored).delete_blob()
    with caplog.at_level("INFO", logger="include.azblob_xcom_backend"):
        WasbXComBackend.purge(SimpleNamespace(value=stored))
        WasbXComBackend.purge(SimpleNamespace(value={"plain": "dict"}))
        WasbXComBackend.purge(SimpleNamespace(value="text"))
    assert f"XCom blob {stored['uri']} was already gone" in caplog.text


def test_purge_with_storage_down_warns_and_does_not_raise(xcom_env, storage_down, caplog):
    stored = push(rich_frame(3000))
    storage_down()
    with caplog.at_level("WARNING", logger="include.azblob_xcom_backend"):
        WasbXComBackend.purge(SimpleNamespace(value=stored))
    assert f"Could not purge XCom blob {stored['uri']}" in caplog.text
