"""The XCom backend's metrics (include/metrics.py: azblob_xcom.*) as Airflow's StatsD client sends them over UDP to a
real receiver, with the InfluxDB-style tags the chart's metrics.enabled turns on, while the backend works against
Azurite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from include import azblob_xcom_backend as backend
from include import metrics
from include.azblob_xcom_backend import WasbXComBackend
from scripts.airflow_api import wait_for
from tests.support.statsd_receiver import StatsdReceiver

IDS = {"key": "return_value", "dag_id": "etl", "run_id": "manual__1", "map_index": -1}
SEEN_BOUND_S = 10  # UDP on the loopback: the receiver's thread has it within milliseconds


@pytest.fixture
def statsd(xcom_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdReceiver]:
    receiver = StatsdReceiver()
    for name, value in receiver.env().items():
        monkeypatch.setenv(name, value)
    metrics._stats.cache_clear()  # set Stats up again from the [metrics] above
    try:
        yield receiver
    finally:
        receiver.close()
        monkeypatch.undo()
        metrics._stats.cache_clear()
        metrics._stats()  # back to this process's own [metrics] (no StatsD) before the next test sends


def push(value: Any, task_id: str) -> Any:
    return json.loads(json.dumps(WasbXComBackend.serialize_value(value, task_id=task_id, **IDS)))


def pull(stored: Any) -> Any:
    return WasbXComBackend.deserialize_value(SimpleNamespace(value=stored))


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"n": range(rows), "name": [f"row {i}" for i in range(rows)]})


def test_a_blob_push_and_pull_count_the_blobs_bytes_and_time_under_the_writing_task(statsd: StatsdReceiver) -> None:
    stored = push(frame(5000), "extract")
    pull(stored)
    pushed = {"dag_id": "etl", "task_id": "extract", "direction": "push", "format": "parquet"}
    pulled = {**pushed, "direction": "pull"}
    wait_for("the pull's timing", lambda: statsd.samples("azblob_xcom.duration", **pulled), timeout=SEEN_BOUND_S)
    assert statsd.total("azblob_xcom.bytes", **pushed) == stored["size_bytes"]
    assert statsd.total("azblob_xcom.bytes", **pulled) == stored["size_bytes"]
    assert statsd.total("azblob_xcom.values", direction="push", storage="blob") == 1
    assert statsd.total("azblob_xcom.values", direction="pull", storage="blob") == 1
    for tags in (pushed, pulled):
        (timing,) = statsd.samples("azblob_xcom.duration", **tags)
        assert timing.kind == "ms"
        assert 0 < timing.value < 60_000


def test_an_inline_value_counts_as_inline_without_bytes(statsd: StatsdReceiver) -> None:
    pull(push({"rows": 3}, "count"))
    wait_for("the inline pull", lambda: statsd.total("azblob_xcom.values", direction="pull"), timeout=SEEN_BOUND_S)
    assert statsd.total("azblob_xcom.values", direction="push", storage="inline") == 1
    assert statsd.total("azblob_xcom.values", direction="pull", storage="inline") == 1
    assert not statsd.samples("azblob_xcom.bytes")


def test_a_tampered_or_missing_blob_counts_an_error_of_its_kind(statsd: StatsdReceiver, azurite: Any) -> None:
    tampered, missing = push(frame(3000), "a"), push(frame(3000), "b")
    service = backend.service_client("wasb_default")
    blob = service.get_blob_client(*backend.parse_uri(tampered["uri"]))
    data = bytearray(blob.download_blob().readall())
    data[100] ^= 0xFF
    blob.upload_blob(bytes(data), overwrite=True)
    service.get_blob_client(*backend.parse_uri(missing["uri"])).delete_blob()
    with pytest.raises(backend.XComIntegrityError):
        pull(tampered)
    with pytest.raises(backend.XComBlobNotFoundError):
        pull(missing)
    errors = "azblob_xcom.errors"
    wait_for("both errors", lambda: statsd.total(errors, direction="pull") == 2, timeout=SEEN_BOUND_S)
    assert statsd.total(errors, direction="pull", error="integrity") == 1
    assert statsd.total(errors, direction="pull", error="not_found") == 1
    assert not statsd.samples("azblob_xcom.bytes", direction="pull")


def test_purges_count_by_outcome(statsd: StatsdReceiver) -> None:
    stored = push(frame(3000), "c")
    WasbXComBackend.purge(SimpleNamespace(value=stored))
    WasbXComBackend.purge(SimpleNamespace(value=stored))
    forged = {**stored, "uri": "xcom_wasb://airflow-logs/dag_id=etl/x.parquet"}
    WasbXComBackend.purge(SimpleNamespace(value=forged))
    wait_for("three purges", lambda: statsd.total("azblob_xcom.purges") == 3, timeout=SEEN_BOUND_S)
    assert {s.tags["outcome"]: s.value for s in statsd.samples("azblob_xcom.purges")} == {
        "deleted": 1,
        "gone": 1,
        "refused": 1,
    }


def test_a_metric_not_in_the_list_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"metric azblob_xcom.values .* is not as include/metrics.py METRICS lists it"):
        metrics.count("azblob_xcom.values", direction="push")
