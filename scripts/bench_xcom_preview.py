"""Benchmark of the XCom preview (include/xcom_preview.py): what showing a large DataFrame XCom's schema and first 100
rows costs, beside pulling it whole, on one Azurite.

    make bench-preview          # 1M and 10M rows, writes docs/benchmarks/xcom-preview.md
    .venv/bin/python scripts/bench_xcom_preview.py --rows 200000 --repeat 1 --no-write

Each frame (bench_xcom.py's 7 mixed columns) is pushed once by the backend as a task would; then each measurement
runs in a fresh process with its peak-RSS counter reset: the preview (footer and first row groups by ranged reads)
and, for comparison, the backend's pull of the whole value. Medians of --repeat rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_xcom import DOCS, bench_env, make_frame, push_backend, reset_peak_rss, rss_kb

ROWS_SHOWN = 100


def measure(stage: str, handle: str) -> dict[str, Any]:
    """In this (fresh) process: one preview of the stored value (what an api-server's first preview pays: the Azure
    SDK, pyarrow and pandas imported, the connection made), then, measured alone, another preview or the whole pull."""
    import airflow.sdk.execution_time.task_runner  # noqa: F401 - what an api-server or a task has loaded anyway

    from include import xcom_preview
    from scripts.bench_xcom import pull_backend

    started = time.perf_counter()
    xcom_preview.preview(json.loads(handle), ROWS_SHOWN)
    result: dict[str, Any] = {"first_s": time.perf_counter() - started}
    before = reset_peak_rss()
    started = time.perf_counter()
    if stage == "preview":
        shown = xcom_preview.preview(json.loads(handle), ROWS_SHOWN)
        result |= {"bytes_read": shown.bytes_read, "requests": shown.requests, "rows_shown": len(shown.rows)}
    else:
        result["rows_back"] = len(pull_backend(handle, dict(os.environ)))
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = (rss_kb("VmHWM") - before) / 1024
    return result


def run_worker(env: dict[str, str], stage: str, handle_file: Path) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", stage, "--handle", str(handle_file)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row_groups(env: dict[str, str], handle: str) -> int:
    """How many row groups the backend wrote (read from the blob's footer)."""
    code = (
        "import json,sys; from include.azblob_xcom_backend import BlobReference, BackendConfig;"
        "from include.xcom_preview import RangedBlob; import pyarrow.parquet as pq;"
        "ref = BlobReference.from_json(json.loads(sys.argv[1]));"
        "print(pq.ParquetFile(RangedBlob(BackendConfig.from_airflow(), ref)).metadata.num_row_groups)"
    )
    done = subprocess.run([sys.executable, "-c", code, handle], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def run(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    results = []
    with bench_env() as (env, _), tempfile.TemporaryDirectory() as scratch:
        os.environ.update(env)
        for rows in sizes:
            handle, stored = push_backend(make_frame(rows), env)
            handle_file = Path(scratch) / "handle.json"
            handle_file.write_text(handle)
            preview = [run_worker(env, "preview", handle_file) for _ in range(repeat)]
            pull = [run_worker(env, "pull", handle_file) for _ in range(repeat)]
            if any(r["rows_shown"] != ROWS_SHOWN for r in preview) or any(r["rows_back"] != rows for r in pull):
                raise RuntimeError(f"at {rows:,} rows a preview or a pull came back short: {preview} {pull}")
            results.append(
                {
                    "rows": rows,
                    "blob_bytes": stored,
                    "row_groups": row_groups(env, handle),
                    "first_preview_s": statistics.median(r["first_s"] for r in preview),
                    "preview_s": statistics.median(r["seconds"] for r in preview),
                    "preview_bytes": statistics.median(r["bytes_read"] for r in preview),
                    "preview_requests": statistics.median(r["requests"] for r in preview),
                    "preview_rss_mb": statistics.median(r["peak_rss_mb"] for r in preview),
                    "pull_s": statistics.median(r["seconds"] for r in pull),
                    "pull_rss_mb": statistics.median(r["peak_rss_mb"] for r in pull),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    return results


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | blob MB | row groups | first preview s | preview s | preview read MB (% of blob) | requests "
        "| preview peak RSS MB | whole pull s | whole pull peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        share = r["preview_bytes"] / r["blob_bytes"] * 100
        lines.append(
            f"| {r['rows']:,} | {r['blob_bytes'] / 1e6:.1f} | {r['row_groups']} | {r['first_preview_s']:.2f} "
            f"| {r['preview_s']:.3f} "
            f"| {r['preview_bytes'] / 1e6:.2f} ({share:.1f} %) | {r['preview_requests']:.0f} "
            f"| {r['preview_rss_mb']:.0f} | {r['pull_s']:.2f} | {r['pull_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="frame sizes (default 1M and 10M)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--worker", choices=["preview", "pull"], help=argparse.SUPPRESS)
    parser.add_argument("--handle", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.handle.read_text())))
        return
    results = run(args.rows or [1_000_000, 10_000_000], args.repeat)
    table = report(results)
    print(table)
    if args.no_write:
        return
    largest = results[-1]
    share = largest["preview_bytes"] / largest["blob_bytes"] * 100
    met = "met" if largest["preview_s"] < 1 and share < 5 else "NOT met"  # the first preview: once per api-server
    (DOCS / "xcom-preview.md").write_text(
        f"# XCom preview benchmark\n\nGenerated by `make bench-preview` (scripts/bench_xcom_preview.py) on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Azurite on the same machine: the preview of a "
        f"DataFrame XCom (the reference, the dtypes and the first {ROWS_SHOWN} rows) as the api-server's "
        f"/xcom-preview computes it, beside the backend's pull of the whole value (download and decode). Each "
        f"measurement runs in a fresh process: its first preview (imports, connection: what an api-server's first "
        f"preview pays) is the *first preview* column; then, with the peak-RSS counter reset, one more preview or "
        f"the whole pull is measured alone. Medians of {args.repeat}. The frame: scripts/bench_xcom.py's 7 mixed "
        f"columns, written as the backend writes it (pyarrow's row groups of 1,048,576 rows).\n\n{table}\n\n"
        f"Goal (issue 24): at {largest['rows']:,} rows, under 1 s and under 5 % of the blob's bytes: {met} "
        f"({largest['preview_s']:.3f} s, first {largest['first_preview_s']:.2f} s, {share:.1f} %). The bytes a "
        f"preview reads are each column's first pages (pyarrow writes pages of up to 1 MiB): the same at every "
        f"size, so their share falls as the frame grows.\n"
    )
    print(f"wrote {DOCS / 'xcom-preview.md'}")


if __name__ == "__main__":
    main()
