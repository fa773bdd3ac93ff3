"""Benchmark of the local stack: time from `git push` to a runnable DAG, and the DataFrame DAG's run time.

    make bench-local            # writes docs/benchmarks/local-stack.md
    .venv/bin/python scripts/bench_local_stack.py --pushes 1 --runs 1 --no-write

Starts its own stack (detached, SQLite, free ports, a temp state dir), then:
- push: commits a new DAG (example_dataframe_pipeline under a fresh dag_id) to the stack's Git repository with
  scripts/push-dags and times until the REST API returns the DAG (GitDagBundle fetch + dag-processor parse);
- run: triggers example_dataframe_pipeline and times trigger -> run success (wall clock seen by a client) and the
  run's own start -> end as Airflow recorded it.
Stops the stack at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import airflow_api
from scripts.devstack import stack
from scripts.devstack.services import free_port
from scripts.paths import ROOT

DOCS = ROOT / "docs" / "benchmarks" / "local-stack.md"
EXAMPLE = "example_dataframe_pipeline"


@contextlib.contextmanager
def running_stack(work: Path) -> Iterator[tuple[stack.Settings, airflow_api.Api]]:
    """A detached local stack (SQLite, free ports, state under ``work``) with the example DAG registered, and an
    authenticated REST client; stopped when the block ends, whatever happened."""
    settings = stack.Settings(state_dir=work / "state", api_port=free_port(), azurite_port=free_port())
    local = stack.LocalStack(settings)
    try:
        local.up()
        secret = json.loads((settings.state_dir / "secrets.json").read_text())
        api = airflow_api.Api(settings.api_url)
        api.authenticate(stack.ADMIN, secret["admin_password"])
        airflow_api.wait_for(f"{EXAMPLE} to be registered", lambda: api.dag_exists(EXAMPLE), timeout=300)
        yield settings, api
    finally:
        local.stop()


def time_push(settings: stack.Settings, api: airflow_api.Api, work: Path, n: int) -> float:
    """Push dags/ plus a new copy of the example DAG; seconds until the API knows the new dag_id."""
    source = work / f"push-{n}"
    source.mkdir()
    for path in (ROOT / "dags").glob("*.py"):
        (source / path.name).write_text(path.read_text())
    dag_id = f"bench_push_{n}_{int(time.time())}"
    text = (ROOT / "dags" / f"{EXAMPLE}.py").read_text().replace(f"def {EXAMPLE}(", f"def {dag_id}(")
    (source / f"{dag_id}.py").write_text(text.replace(f"{EXAMPLE}()", f"{dag_id}()"))
    started = time.monotonic()
    stack.push_dags(settings, source, quiet=True)
    airflow_api.wait_for(f"{dag_id} to be registered", lambda: api.dag_exists(dag_id), timeout=300, interval=0.25)
    return time.monotonic() - started


def time_run(api: airflow_api.Api) -> tuple[float, float]:
    """(client wall clock trigger -> success, Airflow's recorded run start -> end) for one run of the example."""
    from datetime import datetime

    started = time.monotonic()
    run_id = airflow_api.run_dag(api, EXAMPLE, timeout=600, interval=0.25)
    wall = time.monotonic() - started
    run = api.call("GET", airflow_api.run_path(EXAMPLE, run_id))
    recorded = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
    return wall, recorded


def report(pushes: list[float], runs: list[tuple[float, float]]) -> str:
    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {len(values)} | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} |"

    return "\n".join(
        [
            "| measurement | n | min s | median s | max s |",
            "|---|---:|---:|---:|---:|",
            row("git push -> DAG registered (GitDagBundle refresh 10 s + parse)", pushes),
            row(f"{EXAMPLE}: trigger -> success (client)", [w for w, _ in runs]),
            row(f"{EXAMPLE}: run start -> end (recorded by Airflow)", [r for _, r in runs]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp, running_stack(Path(tmp)) as (settings, api):
        pushes = [time_push(settings, api, Path(tmp), n) for n in range(args.pushes)]
        runs = [time_run(api) for _ in range(args.runs)]
    table = report(pushes, runs)
    print(table)
    if args.no_write:
        return
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(
        f"# Local stack benchmark\n\nGenerated by `make bench-local` (scripts/bench_local_stack.py) on "
        f"{time.strftime('%Y-%m-%d')}: `make up`'s stack (SQLite, LocalExecutor, Azurite) on {os.cpu_count()} "
        f"cores.\nA push commits dags/ plus a new DAG with scripts/push-dags; the DAG counts as runnable when the "
        f"REST API returns it.\nThe example moves a 200k-row DataFrame (about 2 MB of Parquet) through Blob.\n\n"
        f"{table}\n"
    )
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
