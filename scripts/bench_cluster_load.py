"""Benchmark: a run of about 300 tasks under the KubernetesExecutor on the local cluster, and the knobs that move it.

    make bench-cluster-load                       # writes docs/benchmarks/cluster-load.md and cluster-load.json
    .venv/bin/python scripts/bench_cluster_load.py --mapped 40 --setting core.parallelism=8 --no-write   # a quick look

Owns the machine while it runs (root on Debian, like `make cluster-up`); a running local cluster is taken down.
The release is installed with the local cluster's profiles and `metrics.enabled` (the scheduler's loop duration is
read from the statsd exporter), scripts/bench_dags/bench_scale_dag.py is pushed beside the examples, and for each
--setting (airflow.cfg overrides; the release is upgraded in between) one run of `plan` -> --mapped `produce`
tasks -> `check`, beside 18 plain tasks. While it runs:

- a watch on the worker pods: how many existed and ran at once, how many were created per second;
- `pg_stat_activity` on the chart's PostgreSQL every 2 s: connections to the airflow database;
- a UI's polling: the grid (`/ui/grid/runs`, `/ui/grid/ti_summaries`) and the run's task instances
  (`/api/v2/.../taskInstances`) in turn, each answer's latency;
- the machine's CPU (/proc/stat: the cluster runs as processes here), busy share and CPU seconds per task;
- afterwards: each task's tries (a retried or failed task is an error), the Execution API's answers in the
  api-server's access log (5xx, slower than the tasks' timeout, latency), and the scheduler's loop duration over
  the run (exporter summary deltas).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median, quantiles
from typing import Any
from urllib.parse import quote

import yaml

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import airflow_api
from scripts.bench_cluster import (
    NAMESPACE,
    api_client,
    cluster_cli,
    kubectl,
    port_forward,
    step,
    timed,
)
from scripts.bench_lanes import upgrade
from scripts.chart import CHART
from scripts.localcluster import cluster, images
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodWatch, peak
from scripts.paths import IMAGES_SCRIPT, ROOT

DOCS = ROOT / "docs" / "benchmarks" / "cluster-load.md"
DATA = ROOT / "docs" / "benchmarks" / "cluster-load.json"
DAG_FILE = ROOT / "scripts" / "bench_dags" / "bench_scale_dag.py"
DAG_ID = "bench_scale_dag"
PLAIN = 18  # plain_00 .. plain_17 in the DAG file, beside plan and check
FULLNAME = "airflow-airflow-azblob"
RUN_BOUND_S = 3600
CONNECTIONS_SQL = "select count(*) from pg_stat_activity where datname = 'airflow'"
UI_PATHS = {
    "grid runs": "/ui/grid/runs/{dag}?limit=10",
    "grid ti_summaries": "/ui/grid/ti_summaries/{dag}?run_ids={run}",
    "task instances": "/api/v2/dags/{dag}/dagRuns/{run}/taskInstances?limit=100",
}
DEFAULTS = "defaults"  # the chart's airflow.cfg: worker_pods_creation_batch_size 1 (Airflow's), parallelism 32
SETTINGS = (
    DEFAULTS,
    "kubernetes_executor.worker_pods_creation_batch_size=16",
    "kubernetes_executor.worker_pods_creation_batch_size=16,core.parallelism=8",
)
UI_TIMEOUT_S = 30  # a UI request slower than this counts as failed (scripts/airflow_api.py waits as long)
# What the scheduler logs when it resets, fails or re-queues a task outside the task's own run (not the "Adopting or
# resetting orphaned tasks" line every scheduler logs as it starts and on each check)
SCHEDULER_TROUBLE = re.compile(
    r"(?i)reset the following|stuck in queued|failing task|pod creation failed|executor .* reported|\[error"
)
LOOP = "airflow_scheduler_scheduler_loop_duration"
# Airflow's access log line: "... request finished [http.access] ... duration_us=390786 ... method=PATCH
# path=/execution/task-instances/<id>/state query= status_code=204"
ACCESS_LINE = re.compile(
    r"duration_us=(?P<us>\d+) .*method=(?P<method>\S+) path=(?P<path>\S+) .*status_code=(?P<status>\d+)"
)
# [workers] execution_api_timeout as the chart sets it: a slower answer is a timeout to the task's supervisor
CHART_CONFIG = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
EXECUTION_API_TIMEOUT_S = float(CHART_CONFIG["workers"]["execution_api_timeout"])


class Sampler:
    """Call ``sample()`` every ``interval`` seconds on a thread until stopped; keep (time, value) pairs."""

    def __init__(self, sample: Callable[[], Any], interval: float) -> None:
        self.sample, self.interval, self.values = sample, interval, []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.values.append((time.time(), self.sample()))
            except Exception as err:  # a failed sample is reported, not fatal: the run goes on
                self.errors.append(f"{time.strftime('%H:%M:%S')} {type(err).__name__}: {err}"[:300])
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_times() -> tuple[float, float]:
    """The machine's busy and total CPU seconds so far, every core (/proc/stat; the cluster runs as processes here)."""
    fields = [int(field) for field in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def db_connections() -> int:
    out = kubectl("exec", f"{FULLNAME}-postgresql-0", "--", "psql", "-U", "airflow", "-d", "airflow", "-tAc",
                  CONNECTIONS_SQL)  # fmt: skip
    return int(out.strip())


def get(url: str, token: str = "") -> bytes:
    """The body of GET ``url`` (an error answer raises): the grid's answers are NDJSON streams, not one JSON."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=UI_TIMEOUT_S) as response:
        return response.read()


def ui_poller(api: airflow_api.Api, run_id: str) -> Callable[[], dict[str, float]]:
    """One round of what a browser on the run's grid asks for: each endpoint's latency in ms."""

    def poll() -> dict[str, float]:
        latencies = {}
        for name, path in UI_PATHS.items():
            started = time.perf_counter()
            get(api.base_url + path.format(dag=DAG_ID, run=quote(run_id, safe="")), api.token)
            latencies[name] = (time.perf_counter() - started) * 1000
        return latencies

    return poll


def task_instances(api: airflow_api.Api, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's task instances, every page of them, keyed "task_id[map_index]"."""
    found: dict[str, dict[str, Any]] = {}
    while True:
        path = f"{airflow_api.run_path(DAG_ID, run_id)}/taskInstances?limit=100&offset={len(found)}"
        page = api.call("GET", path)["task_instances"]
        found |= {f"{ti['task_id']}[{ti['map_index']}]": ti for ti in page}
        if not page:
            return found


def scrape_loop() -> dict[str, float]:
    """The scheduler loop duration summary from the statsd exporter: count, sum, and its quantiles (seconds)."""
    forward, port = port_forward(f"{FULLNAME}-statsd-exporter", 9102)
    try:
        text = get(f"http://127.0.0.1:{port}/metrics").decode()
    finally:
        forward.terminate()
    found = {}
    for line in text.splitlines():
        if line.startswith(LOOP):
            name, value = line.rsplit(" ", 1)
            key = name.removeprefix(LOOP).strip("{}_")
            found[key.replace('quantile="', "p").replace('"', "")] = float(value)
    return found


def execution_api_calls(since: str) -> list[dict[str, Any]]:
    """The api-server's access log since ``since`` (RFC 3339): each Execution API request's path, status and ms."""
    logs = kubectl("logs", "-l", "app.kubernetes.io/component=api-server", "--since-time", since, "--tail", "-1",
                   "--max-log-requests", "10")  # fmt: skip
    return [
        {"method": m["method"], "path": m["path"], "status": int(m["status"]), "ms": int(m["us"]) / 1000}
        for m in map(ACCESS_LINE.search, logs.splitlines())
        if m and m["path"].startswith("/execution/")
    ]


def scheduler_trouble(since: str) -> list[str]:
    """The scheduler's log lines since ``since`` that say a task was failed, reset or re-queued outside its own run
    (read at the end of each run: an upgrade replaces the pod, and its log with it)."""
    logs = kubectl("logs", "-l", "app.kubernetes.io/component=scheduler", "--since-time", since, "--tail", "-1")
    return [line[:400] for line in logs.splitlines() if SCHEDULER_TROUBLE.search(line)]


def summarize_calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, errors (5xx), answers slower than the tasks' timeout, and latency quantiles of Execution API calls."""
    ms = [call["ms"] for call in calls]
    p50, p95 = p50_p95(ms)
    return {
        "calls": len(calls),
        "errors_5xx": [call for call in calls if call["status"] >= 500],
        "slower_than_timeout": [call for call in calls if call["ms"] > EXECUTION_API_TIMEOUT_S * 1000],
        "p50_ms": p50,
        "p95_ms": p95,
        "max_ms": max(ms, default=float("nan")),
    }


def p50_p95(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    cuts = quantiles(values, n=20)
    return median(values), cuts[18]


def wait_for_end(api: airflow_api.Api, run_id: str) -> tuple[str, list[str]]:
    """Wait until the run finished; return its state and the polls that failed on the way (a poll that times out or
    errs is what a user's browser would have seen: counted, and the wait goes on)."""
    failures: list[str] = []

    def finished() -> str | None:
        try:
            state = api.call("GET", airflow_api.run_path(DAG_ID, run_id))["state"]
        except (airflow_api.ApiError, OSError) as err:
            failures.append(f"{time.strftime('%H:%M:%S')} run state: {type(err).__name__}: {err}"[:300])
            return None
        return state if state in airflow_api.FINISHED else None

    return airflow_api.wait_for(f"run {run_id} to finish", finished, timeout=RUN_BOUND_S, interval=1), failures


def load_run(api: airflow_api.Api, setting: str, mapped: int) -> dict[str, Any]:
    """One run of DAG_ID with ``mapped`` produce tasks, measured as the module docstring says."""
    tasks = mapped + PLAIN + 2
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    loop_before, cpu_before = scrape_loop(), cpu_times()
    with PodWatch(cluster.PATHS.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        started = time.monotonic()
        run_id = airflow_api.trigger_dag(api, DAG_ID, conf={"mapped": mapped})
        with Sampler(db_connections, 2.0) as connections, Sampler(ui_poller(api, run_id), 2.0) as ui:
            state, poll_errors = wait_for_end(api, run_id)
            seconds = time.monotonic() - started
        pods = watch.wait_until_gone(count=tasks if state == "success" else 1, timeout=600)
    loop_after, cpu_after = scrape_loop(), cpu_times()
    busy, total = (after - before for before, after in zip(cpu_before, cpu_after, strict=True))
    instances = task_instances(api, run_id)
    created = sorted(pod.created for pod in pods.values())
    loop_runs = loop_after.get("count", 0) - loop_before.get("count", 0)
    return {
        "setting": setting,
        "tasks": tasks,
        "state": state,
        "trigger_to_end_s": seconds,
        "pods": len(pods),
        "peak_pods_existing": peak([(p.created, p.deleted) for p in pods.values()]),
        "peak_pods_running": peak([(p.running, p.finished) for p in pods.values()]),
        "cpu_busy_share": busy / total,
        "cpu_seconds_per_task": busy / tasks,
        "pods_created_per_s": (len(created) - 1) / (created[-1] - created[0]) if len(created) > 1 else 0.0,
        "pods_failed": sorted(p.name for p in pods.values() if "Failed" in p.phases),
        "db_connections": [value for _, value in connections.values],
        "ui_latency_ms": {name: [round[name] for _, round in ui.values] for name in UI_PATHS},
        "ui_failures": ui.errors + poll_errors,
        "db_sampler_errors": connections.errors,
        "retried_or_failed": sorted(
            key for key, ti in instances.items() if ti["state"] != "success" or ti["try_number"] > 1
        ),
        "execution_api": summarize_calls(execution_api_calls(since)),
        "scheduler_log": scheduler_trouble(since),
        "scheduler_loops": loop_runs,
        "scheduler_loop_mean_s": (loop_after.get("sum", 0) - loop_before.get("sum", 0)) / loop_runs if loop_runs else 0,
        "scheduler_loop_quantiles_s": {k: v for k, v in loop_after.items() if k.startswith("p")},
    }


@contextmanager
def dags_with_the_benchmark() -> Iterator[Path]:
    """dags/ with the benchmark's DAG beside the examples: what every `scripts/deploy install` pushes (DAGS_DIR)."""
    with tempfile.TemporaryDirectory() as folder:
        dags = Path(folder) / "dags"
        shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(DAG_FILE, dags / DAG_FILE.name)
        os.environ["DAGS_DIR"] = str(dags)
        try:
            yield dags
        finally:
            del os.environ["DAGS_DIR"]


def release_values(setting: str) -> str:
    """The chart values of ``setting`` ("section.key=value,..." of airflow.cfg, or "defaults"), metrics enabled."""
    config: dict[str, dict[str, str]] = {}
    for item in setting.split(",") if setting != DEFAULTS else []:
        name, _, value = item.partition("=")
        section, _, key = name.partition(".")
        if not (section and key and value):
            raise SystemExit(f"--setting {setting!r}: each item is section.key=value, e.g. core.parallelism=8")
        config.setdefault(section, {})[key] = value
    return yaml.safe_dump({"metrics": {"enabled": True}, "config": config})


def measure(settings: list[str], mapped: int) -> list[dict[str, Any]]:
    results = []
    started_docker = images.start_docker()
    try:
        timed([str(IMAGES_SCRIPT), "build"])
        cluster_cli("up")
        for setting in settings:
            with dags_with_the_benchmark():
                upgrade(release_values(setting), f"metrics on, {setting}")
            with api_client(DAG_ID) as api:
                step(f"one run: {mapped} mapped produce tasks + {PLAIN + 2} plain ones, {setting}")
                results.append(load_run(api, setting, mapped))
                print(json.dumps(results[-1]), flush=True)  # the log keeps each run's numbers should a later one fail
    finally:
        cluster_cli("down")
        if started_docker:
            images.stop_docker()
    return results


def report(results: list[dict[str, Any]]) -> str:
    def latency(run: dict[str, Any], name: str) -> str:
        p50, p95 = p50_p95(run["ui_latency_ms"][name])
        return f"{p50:.0f} / {p95:.0f}"

    def loop(run: dict[str, Any]) -> str:
        quantile = run["scheduler_loop_quantiles_s"].get("p0.99")
        return f"{run['scheduler_loop_mean_s']:.2f}" + (f" / {quantile:.2f}" if quantile is not None else "")

    rows = {
        "run state": lambda r: r["state"],
        "tasks (worker pods)": lambda r: f"{r['tasks']} ({r['pods']})",
        "trigger -> run finished, s": lambda r: f"{r['trigger_to_end_s']:.0f}",
        "worker pods created per second": lambda r: f"{r['pods_created_per_s']:.2f}",
        f"CPU busy over the run ({os.cpu_count()} cores)": lambda r: f"{r['cpu_busy_share']:.0%}",
        "CPU seconds per task (all of the machine's / tasks)": lambda r: f"{r['cpu_seconds_per_task']:.1f}",
        "worker pods existing at once, peak": lambda r: str(r["peak_pods_existing"]),
        "worker pods running at once, peak": lambda r: str(r["peak_pods_running"]),
        "DB connections (pg_stat_activity), peak": lambda r: str(max(r["db_connections"], default=0)),
        **{f"{name}, p50 / p95 ms": (lambda r, name=name: latency(r, name)) for name in UI_PATHS},
        "UI requests that failed or timed out (30 s)": lambda r: str(len(r["ui_failures"])),
        "tasks retried or failed": lambda r: str(len(r["retried_or_failed"])),
        "Execution API calls (api-server access log)": lambda r: str(r["execution_api"]["calls"]),
        f"Execution API 5xx / slower than the tasks' {EXECUTION_API_TIMEOUT_S:.0f} s timeout": lambda r: (
            f"{len(r['execution_api']['errors_5xx'])} / {len(r['execution_api']['slower_than_timeout'])}"
        ),
        "Execution API p50 / p95 / max ms": lambda r: " / ".join(
            f"{r['execution_api'][key]:.0f}" for key in ("p50_ms", "p95_ms", "max_ms")
        ),
        "failed worker pods": lambda r: str(len(r["pods_failed"])),
        "scheduler loops during the run": lambda r: f"{r['scheduler_loops']:.0f}",
        "scheduler loop, mean over the run / p99 of its last 10 min, s": loop,
    }
    header = ["airflow.cfg beyond the chart's", *(r["setting"].replace(",", ", ") for r in results)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(results)]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in results) + " |" for label, cell in rows.items()]
    troubles = [
        f"- {r['setting']}: {call}"
        for r in results
        for call in (r["execution_api"]["errors_5xx"] + r["execution_api"]["slower_than_timeout"])[:5]
    ]
    troubles += [f"- {r['setting']}, scheduler: {line}" for r in results for line in r.get("scheduler_log", [])[:8]]
    troubles += [f"- {r['setting']}: {line}" for r in results for line in r["ui_failures"][:8] + r["db_sampler_errors"]]
    return "\n".join(lines + (["", "What went wrong (first lines):", *troubles] if troubles else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mapped", type=int, default=280, help="mapped produce tasks (beside 20 plain ones)")
    parser.add_argument(
        "--setting",
        action="append",
        help="airflow.cfg overrides of one run, section.key=value[,...], or 'defaults' (repeatable; default: "
        + " then ".join(SETTINGS)
        + ")",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--from-json", action="store_true", help=f"no cluster: render the report of {DATA.name} again")
    args = parser.parse_args()
    settings = args.setting or list(SETTINGS)
    results = json.loads(DATA.read_text()) if args.from_json else measure(settings, args.mapped)
    text = report(results)
    print(text)
    if not args.no_write:
        if not args.from_json:
            DATA.write_text(json.dumps(results, indent=2) + "\n")
        when = time.strftime("%Y-%m-%d", time.localtime(DATA.stat().st_mtime))
        DOCS.write_text(
            f"# A run of {results[0]['tasks']} tasks on the local cluster\n\nGenerated by `make bench-cluster-load` "
            f"(scripts/bench_cluster_load.py) on {when}, {os.cpu_count()} cores: the local "
            "cluster of `make cluster-up`, the chart with config/profiles/kind.yaml + scripts/localcluster/values.yaml "
            "and metrics.enabled, one run of scripts/bench_dags/bench_scale_dag.py per column. Raw numbers: "
            f"[cluster-load.json](cluster-load.json).\n\n{text}\n"
        )
        print(f"wrote {DOCS} and {DATA}")


if __name__ == "__main__":
    main()
