"""What compiled bytecode saves each Airflow process of the repository's venv: with and without .pyc files.

    .venv/bin/python scripts/bench_bytecode.py            # writes docs/benchmarks/bytecode.md
    .venv/bin/python scripts/bench_bytecode.py --runs 1 --no-write

"Without" is simulated, not undone: PYTHONDONTWRITEBYTECODE=1 plus PYTHONPYCACHEPREFIX pointing at an empty
directory makes Python ignore every __pycache__ and compile each module from source in each process, exactly what
a venv installed without bytecode costs on a machine with PYTHONDONTWRITEBYTECODE=1 (or on a read-only root
filesystem). "With" reads the .pyc files `scripts/bootstrap` now compiles at install. Measured, alternating:
- a task's imports: Airflow's task runtime, pandas, pyarrow, the WASB hook and the XCom backend;
- `airflow version` (the CLI every container start and liveness probe pays);
- parsing dags/ as the dag-processor does (DagBag in a fresh process);
- `make up` (scripts/local-stack up --detach) to every component healthy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.devstack.services import free_port
from scripts.paths import ROOT

DOCS = ROOT / "docs" / "benchmarks" / "bytecode.md"
VENV_BIN = Path(sys.executable).parent
TASK_IMPORTS = (
    "import airflow.sdk.execution_time.task_runner, pandas, pyarrow.parquet; "
    "from airflow.providers.microsoft.azure.hooks.wasb import WasbHook; import include.azblob_xcom_backend"
)
PARSE = (
    "from airflow.dag_processing.dagbag import DagBag; "
    "bag = DagBag(dag_folder='dags'); assert bag.dags and not bag.import_errors, bag.import_errors"
)


def env_for(mode: str, empty_cache: Path, home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if mode == "without":
        env["PYTHONPYCACHEPREFIX"] = str(empty_cache)
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def seconds(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def stack_up_seconds(env: dict[str, str], work: Path) -> float:
    """`make up --detach` on free ports until every component reports healthy; stopped afterwards."""
    cli = [str(ROOT / "scripts" / "local-stack"), "--state-dir", str(work / f"state-{time.monotonic_ns()}")]
    ports = ["--api-port", str(free_port()), "--azurite-port", str(free_port())]
    started = time.perf_counter()
    try:
        subprocess.run([*cli, "up", "--detach", *ports], env=env, cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        subprocess.run([*cli, "down"], env=env, cwd=ROOT, check=False, capture_output=True)


def measure(runs: int, with_stack: bool) -> dict[str, dict[str, list[float]]]:
    python = str(VENV_BIN / "python")
    tasks = {
        "a task's imports (task runtime, pandas, pyarrow, WASB hook, backend)": [python, "-c", TASK_IMPORTS],
        "`airflow version`": [str(VENV_BIN / "airflow"), "version"],
        "parse dags/ (DagBag, fresh process)": [python, "-c", PARSE],
    }
    results: dict[str, dict[str, list[float]]] = {name: {"without": [], "with": []} for name in tasks}
    if with_stack:
        results["`make up` to healthy (SQLite)"] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as tmp:
        work = Path(tmp)
        home = work / "airflow-home"
        home.mkdir()
        subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env_for("with", work, home), check=True,
                       capture_output=True)  # fmt: skip
        for _ in range(runs):
            for mode in ("without", "with"):
                empty = work / f"empty-{time.monotonic_ns()}"
                env = env_for(mode, empty, home)
                for name, argv in tasks.items():
                    results[name][mode].append(seconds(argv, env))
                if with_stack:
                    results["`make up` to healthy (SQLite)"][mode].append(stack_up_seconds(env, work))
                print(f"    {mode}: " + ", ".join(f"{r[mode][-1]:.1f}" for r in results.values()), flush=True)
    return results


def report(results: dict[str, dict[str, list[float]]]) -> str:
    lines = ["| per process | without bytecode s (median) | with bytecode s (median) | saved |", "|---|---:|---:|---:|"]
    for name, modes in results.items():
        without, with_ = statistics.median(modes["without"]), statistics.median(modes["with"])
        lines.append(f"| {name} | {without:.2f} | {with_:.2f} | {1 - with_ / without:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-stack", action="store_true", help="skip the `make up` measurement")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    missing = [p for p in (VENV_BIN.parent / "lib").glob("python3*/site-packages/airflow/__init__.py")
               if not any(p.parent.glob("__pycache__/__init__.*.pyc"))]  # fmt: skip
    if missing:
        sys.exit(f"{VENV_BIN.parent} has no compiled bytecode: reinstall it with `make install` first")
    results = measure(args.runs, not args.no_stack)
    text = report(results)
    print(text)
    if not args.no_write:
        DOCS.write_text(
            f"# Compiled bytecode: what each Airflow process saves\n\nGenerated by scripts/bench_bytecode.py on "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, median of "
            f'{args.runs} alternating runs. "Without" makes Python ignore every .pyc (an empty '
            f"PYTHONPYCACHEPREFIX with PYTHONDONTWRITEBYTECODE=1): what a venv installed without bytecode costs "
            f"where nothing may write .pyc files.\n\n{text}\n"
        )
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
