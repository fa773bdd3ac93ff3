"""Benchmark of the metrics path: what `metrics.enabled` costs a task.

    make bench-metrics          # writes docs/benchmarks/metrics.md
    .venv/bin/python scripts/bench_metrics.py --runs 2 --calls 500 --no-write

Two measurements, each with [metrics] off (Airflow's default: no StatsD client) and on (StatsD over UDP with the
chart's settings: prefix airflow, InfluxDB-style tags, to a local UDP socket that a thread drains, as the
statsd_exporter would):
- per task: example_dataframe_pipeline run by `airflow dags test` (every task in one process, a fresh SQLite metadata
  DB, Azurite), off and on alternately; each task's duration as Airflow recorded it, and the datagrams sent;
- per XCom call: the backend's push and pull of a small inline value, in this process, many times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.devstack.services import Azurite
from scripts.paths import ROOT

DOCS = ROOT / "docs" / "benchmarks" / "metrics.md"
DAG_ID = "example_dataframe_pipeline"
AIRFLOW = Path(sys.executable).parent / "airflow"
MODES = ("off", "on")


class Sink:
    """A UDP socket on the loopback that counts and drops what it receives (the exporter's side of StatsD)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.socket.recv(65535)
                self.datagrams += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def metrics_env(mode: str, sink: Sink) -> dict[str, str]:
    if mode == "off":
        return {"AIRFLOW__METRICS__STATSD_ON": "False"}
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(sink.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
    }


@contextlib.contextmanager
def airflow_home() -> Iterator[dict[str, str]]:
    """A scratch AIRFLOW_HOME with a migrated SQLite DB and Azurite as wasb_default: the env to run Airflow in."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as home, Azurite() as azurite:
        connection = json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}})
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__XCOM_BACKEND": "include.azblob_xcom_backend.WasbXComBackend",
            "AIRFLOW_CONN_WASB_DEFAULT": connection,
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
        yield env


def task_durations(home: str, run_id: str) -> dict[str, float]:
    with sqlite3.connect(Path(home) / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)
        ).fetchall()
    return dict(rows)


def runs_of(home: str) -> set[str]:
    with sqlite3.connect(Path(home) / "airflow.db") as conn:
        return {run for (run,) in conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (DAG_ID,))}


def run_once(env: dict[str, str], mode: str) -> tuple[dict[str, float], int]:
    """One `airflow dags test` of the example in ``mode``; each task's seconds and the datagrams it sent."""
    sink = Sink()
    try:
        before = runs_of(env["AIRFLOW_HOME"])
        done = subprocess.run(
            [str(AIRFLOW), "dags", "test", DAG_ID],
            env={**env, **metrics_env(mode, sink)},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"airflow dags test {DAG_ID} ({mode}) exited {done.returncode}:\n{done.stderr[-3000:]}")
        (run_id,) = runs_of(env["AIRFLOW_HOME"]) - before
    finally:
        sink.close()
    return task_durations(env["AIRFLOW_HOME"], run_id), sink.datagrams


def per_call(env: dict[str, str], mode: str, calls: int) -> float:
    """Microseconds per push + pull of a small inline value through the backend, in this process."""
    sink = Sink()
    os.environ.update({key: env[key] for key in ("AIRFLOW_CONN_WASB_DEFAULT", "AIRFLOW_HOME")})
    os.environ.update(metrics_env(mode, sink))
    try:
        from include import metrics
        from include.azblob_xcom_backend import WasbXComBackend

        metrics._stats.cache_clear()
        ids = {"key": "return_value", "dag_id": "bench", "task_id": "t", "run_id": "r", "map_index": -1}
        value = {"rows": 3, "status": "ok"}
        WasbXComBackend.deserialize_value(SimpleNamespace(value=WasbXComBackend.serialize_value(value, **ids)))
        started = time.perf_counter()
        for _ in range(calls):
            WasbXComBackend.deserialize_value(SimpleNamespace(value=WasbXComBackend.serialize_value(value, **ids)))
        return (time.perf_counter() - started) / calls * 1e6
    finally:
        sink.close()


def report(tasks: dict[str, list[dict[str, float]]], datagrams: dict[str, list[int]], calls: dict[str, float]) -> str:
    names = sorted({task for run in tasks["off"] for task in run})
    columns = " | ".join(f"{name} (s)" for name in names)
    lines = [
        f"| metrics | runs | {columns} | per task, mean (s) | datagrams per run |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    means = {}
    for mode in MODES:
        per_task = [statistics.median(run[name] for run in tasks[mode]) for name in names]
        means[mode] = statistics.mean(d for run in tasks[mode] for d in run.values())
        cells = " | ".join(f"{value:.2f}" for value in per_task)
        lines.append(
            f"| {mode} | {len(tasks[mode])} | {cells} | {means[mode]:.3f} | {statistics.median(datagrams[mode]):.0f} |"
        )
    lines.append("")
    lines.append(
        f"Per task: on - off = {means['on'] - means['off']:+.3f} s "
        f"({(means['on'] - means['off']) / means['off'] * 100:+.1f} %); task columns are medians."
    )
    lines += ["", "| metrics | XCom push + pull of an inline value (µs) |", "|---|---|"]
    lines += [f"| {mode} | {calls[mode]:.0f} |" for mode in MODES]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of the example per mode")
    parser.add_argument("--calls", type=int, default=5000, help="XCom push + pull calls per mode")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    tasks: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    datagrams: dict[str, list[int]] = {mode: [] for mode in MODES}
    with airflow_home() as env:
        run_once(env, "off")  # warm: the first run pays for imports and the DAG's first parse
        for _ in range(args.runs):
            for mode in MODES:  # alternating, so that drift hits both alike
                durations, sent = run_once(env, mode)
                tasks[mode].append(durations)
                datagrams[mode].append(sent)
        calls = {mode: per_call(env, mode, args.calls) for mode in MODES}
    table = report(tasks, datagrams, calls)
    print(table)
    if args.no_write:
        return
    DOCS.write_text(
        f"# Metrics overhead benchmark\n\nGenerated by `make bench-metrics` (scripts/bench_metrics.py) on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: [metrics] off (no StatsD client, Airflow's default) "
        f"and on (the chart's metrics.enabled settings: StatsD over UDP with InfluxDB-style tags, here to a local "
        f"socket that drains it).\n\nPer task: {DAG_ID} run by `airflow dags test` (SQLite, Azurite), off and on "
        f"alternately after one warm-up run; each task's duration as Airflow recorded it. Datagrams: what the "
        f"whole run sent (Airflow's metrics and the project's own).\n\n{table}\n"
    )
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
