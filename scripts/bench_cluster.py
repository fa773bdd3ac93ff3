"""Benchmark of the deployment path on the local cluster, and of a KubernetesExecutor task against a LocalExecutor one.

    make bench-cluster                 # writes docs/benchmarks/cluster.md and cluster.json
    .venv/bin/python scripts/bench_cluster.py --cold --runs 3
    .venv/bin/python scripts/bench_cluster.py --runs 1 --no-local-stack --no-write

Owns the machine while it runs (root on Debian, like `make cluster-up`); a running local cluster is taken down.
0. with --cold-tools: `scripts/bootstrap cluster` rebuilds the Kubernetes binaries and CoreDNS with an empty Go
   build cache (modules already downloaded: the proxy's speed is not ours to measure).
1. images: `scripts/localcluster/images build` (stand-ins + airflow-azblob:local); with --cold the images and
   Docker's build cache are removed first, so the build starts from debootstrap; then once more, cached.
2. cluster-up: with the cluster's image cache dropped (`cluster down --purge`: nothing in containerd but what up
   itself imports) and again with it kept (`down`, then `up`).
3. `scripts/deploy install` each time, split by its own steps: image build + import, Git server, DAG push,
   `helm upgrade --install --wait` (install -> every pod Ready), helm test.
4. example_dataframe_pipeline, --runs times: trigger -> success, and per task the worker pod's life (created,
   running, finished, deleted, from a watch) against the task's own queued/start/end times (REST API).
5. What a DAG clone costs each worker pod: for each of --clone-places (the random bytes in the DAG folder, or
   beside it in the repository) and --clone-sizes (MiB of them, pushed with `scripts/deploy push-dags`),
   --clone-runs runs of the same DAG; the pods' created -> running holds their git-sync init container's clone
   (with the kind profile's dags.gitSync.sparseCheckout). Mind the pods' DAG emptyDir (a checkout is about twice
   what it fetches): sizes past a few hundred MiB outgrow it.
6. The same DAG on the local stack (`make up`, LocalExecutor, SQLite) for comparison.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import airflow_api
from scripts.bench_local_stack import running_stack
from scripts.bench_local_stack import time_run as time_local_run
from scripts.devstack.services import free_port
from scripts.localcluster import cluster, images
from scripts.localcluster.podwatch import EXECUTOR_SELECTOR, PodWatch
from scripts.paths import CLUSTER_BIN, CLUSTER_SCRIPT, IMAGES_SCRIPT, KUBERNETES_MODULE, ROOT

DOCS = ROOT / "docs" / "benchmarks" / "cluster.md"
PROFILE = yaml.safe_load((ROOT / "config" / "profiles" / "kind.yaml").read_text())
DATA = ROOT / "docs" / "benchmarks" / "cluster.json"
DAG_ID = "example_dataframe_pipeline"
NAMESPACE = "airflow"
API_SERVICE = "airflow-airflow-azblob-api-server"
SIDECARS = ("airflow-airflow-azblob-dag-processor", "airflow-airflow-azblob-triggerer")  # git-sync every period
CLONE_PHASE = "pod created -> running (sandbox, git-sync clone, container start)"
# Where the random bytes of the clone's cost go: the DAG folder (every pod needs it) or beside it in the repository.
PLACES = {"dags": "dags/assets/ (the DAG folder)", "beside": "data/ (beside the DAG folder)"}
# Per-task phases: (label, start event, end event); events are pod watch times (PodLife.times) or task-instance times.
PHASES = (
    ("queued -> pod created (executor picks the task up)", "queued", "created"),
    ("pod created -> sandbox up (network, volumes)", "created", "sandbox"),
    ("sandbox up -> initialized (git-sync init container's clone)", "sandbox", "initialized"),
    ("initialized -> running (container start)", "initialized", "running"),
    ("running -> task started (Python, Airflow, DAG parse)", "running", "started"),
    ("task started -> ended (the task's own work)", "started", "ended"),
    ("task ended -> container exited (supervisor: log upload, exit)", "ended", "exited"),
    ("container exited -> pod finished (kubelet: sandbox teardown)", "exited", "finished"),
    ("pod finished -> deleted (executor clean-up)", "finished", "deleted"),
)
LIFETIME = "pod lifetime (created -> deleted)"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, list[tuple[float, str]]]:
    """Run ``argv``; return its seconds and its output lines, each with the seconds since start it appeared at."""
    started = time.monotonic()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )  # fmt: skip
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in process.stdout]
    if process.wait() != 0:
        tail = "\n".join(line for _, line in lines[-40:])
        raise RuntimeError(f"{' '.join(argv)} failed:\n{tail}")
    return time.monotonic() - started, lines


def steps_of(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds between consecutive `==> ` lines of a script's output, keyed by the step's line."""
    marks = [(at, line[4:]) for at, line in lines if line.startswith("==> ")]
    return {text: (marks[i + 1][0] if i + 1 < len(marks) else total) - at for i, (at, text) in enumerate(marks)}


def deploy_phases(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """scripts/deploy's steps grouped into what a user waits for."""
    groups = {"images (build + import)": 0.0, "dev Git server + DAG push": 0.0, "helm install -> Ready": 0.0}
    groups |= {"helm test": 0.0, "other": 0.0}
    for text, seconds in steps_of(lines, total).items():
        if text.startswith(("building", "importing", "loading")):
            groups["images (build + import)"] += seconds
        elif text.startswith(("deploying the dev Git", "pushing", "(Git server")):
            groups["dev Git server + DAG push"] += seconds
        elif text.startswith("helm upgrade"):
            groups["helm install -> Ready"] += seconds
        elif text.startswith("helm test"):
            groups["helm test"] += seconds
        elif not text.startswith("Airflow is up"):
            groups["other"] += seconds
    return groups


def cluster_cli(*args: str) -> float:
    seconds, _ = timed([str(CLUSTER_SCRIPT), *args])
    return seconds


def deploy() -> tuple[float, dict[str, float]]:
    env = {**os.environ, "KUBECONFIG": str(cluster.PATHS.kubeconfig)}
    seconds, lines = timed([str(ROOT / "scripts" / "deploy"), "--context", cluster.CONTEXT, "install"], env=env)
    return seconds, deploy_phases(lines, seconds)


def iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def port_forward(service: str, port: int) -> tuple[subprocess.Popen, int]:
    local = free_port()
    process = subprocess.Popen(
        [str(CLUSTER_BIN / "kubectl"), "--kubeconfig", str(cluster.PATHS.kubeconfig), "--namespace", NAMESPACE,
         "port-forward", f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    airflow_api.wait_for("the port-forward", lambda: cluster.port_open("127.0.0.1", local), timeout=30, interval=0.1)
    return process, local


def kubectl(*args: str, input: str | None = None) -> str:
    argv = [str(CLUSTER_BIN / "kubectl"), "--kubeconfig", str(cluster.PATHS.kubeconfig), "--namespace", NAMESPACE]
    return subprocess.run([*argv, *args], capture_output=True, text=True, check=True, input=input).stdout


def admin_password() -> str:
    """From the chart's SimpleAuthManager passwords Secret."""
    encoded = kubectl("get", "secret", "airflow-airflow-azblob-auth", "-o", "jsonpath={.data.passwords\\.json}")
    return json.loads(base64.b64decode(encoded))["admin"]


def timed_run(api: airflow_api.Api, specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One run of DAG_ID: trigger -> success seconds, and per task the phase seconds of PHASES (and CLONE_PHASE, the
    span the clone's cost is read from); the worker pods, as the executor created them, are added to ``specs``."""
    with PodWatch(cluster.PATHS.kubeconfig, NAMESPACE, f"{EXECUTOR_SELECTOR},dag_id={DAG_ID}") as watch:
        started, triggered_at = time.monotonic(), time.time()
        run_id = airflow_api.run_dag(api, DAG_ID, timeout=600, interval=0.25)
        wall = time.monotonic() - started
        tasks = airflow_api.task_instances(api, DAG_ID, run_id)
        pods = watch.wait_until_gone(count=len(tasks), timeout=180)
    per_task, timeline = {}, {}
    for pod in pods.values():
        ti = tasks[pod.task_id]
        task = {"queued": iso(ti["queued_when"]), "started": iso(ti["start_date"]), "ended": iso(ti["end_date"])}
        events = pod.times() | task
        per_task[pod.task_id] = {label: events[end] - events[begin] for label, begin, end in PHASES}
        per_task[pod.task_id][CLONE_PHASE] = events["running"] - events["created"]
        per_task[pod.task_id][LIFETIME] = events["deleted"] - events["created"]
        timeline[pod.task_id] = {name: at - triggered_at for name, at in events.items()}
        if specs is not None:
            specs.append(pod.spec)
    return {"run_id": run_id, "trigger_to_success": wall, "tasks": per_task, "timeline": timeline}


@contextlib.contextmanager
def api_client(dag_id: str = DAG_ID) -> Iterator[airflow_api.Api]:
    """The api-server, port-forwarded and logged in as admin, once ``dag_id`` is registered."""
    forward, port = port_forward(API_SERVICE, 8080)
    try:
        api = airflow_api.Api(f"http://127.0.0.1:{port}")
        api.authenticate("admin", admin_password())
        airflow_api.wait_for(f"{dag_id} registered", lambda: api.dag_exists(dag_id), timeout=300, interval=0.5)
        yield api
    finally:
        forward.terminate()


def cluster_runs(runs: int) -> list[dict[str, Any]]:
    with api_client() as api:
        return [timed_run(api) for _ in range(runs)]


def synced(log: str, commit: str) -> bool:
    """git-sync logged that it checked ``commit`` out (its "update required" line names the commit before fetching)."""
    return any("updated successfully" in line and commit in line for line in log.splitlines())


def filler(folder: Path, megabytes: int) -> None:
    """``megabytes`` MiB of random bytes (incompressible: what Git stores and sends in full, the worst case for a
    clone) and a marker, so each push is a commit of its own."""
    folder.mkdir(parents=True)
    (folder / "pushed.txt").write_text(f"{megabytes} MiB of filler, pushed at {time.time()}\n")
    for index in range(megabytes):
        (folder / f"filler-{index:04d}.bin").write_bytes(os.urandom(1 << 20))


def push_folder(folder: Path, subdir: str) -> str:
    """`scripts/deploy push-dags` of ``folder`` as ``subdir`` of the repository; returns the commit."""
    env = {**os.environ, "KUBECONFIG": str(cluster.PATHS.kubeconfig), "DAGS_DIR": str(folder), "DAGS_SUBDIR": subdir}
    _, lines = timed([str(ROOT / "scripts" / "deploy"), "--context", cluster.CONTEXT, "push-dags"], env=env)
    return next(m[1] for _, line in lines if (m := re.search(r"pushing ([0-9a-f]{7,}) to ", line)))


def push_repository_of(megabytes: int, place: str, workdir: Path) -> str:
    """Push dags/ and data/, ``megabytes`` MiB of filler in dags/assets/ or in data/ (``place``), a marker in the other;
    wait until every git-sync sidecar has checked the commit out, so the runs that follow clone it with nothing else
    syncing. Returns it."""
    dags = workdir / f"{place}-{megabytes}" / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    filler(dags / "assets", megabytes if place == "dags" else 0)
    push_folder(dags, "dags")
    filler(dags.parent / "data", megabytes if place == "beside" else 0)
    commit = push_folder(dags.parent / "data", "data")
    for deployment in SIDECARS:
        log = ("logs", f"deployment/{deployment}", "--container", "git-sync", "--tail", "50")
        airflow_api.wait_for(f"git-sync of {deployment} at {commit}", lambda log=log: synced(kubectl(*log), commit),
                             timeout=300)  # fmt: skip
    return commit


def clone_cost(places: list[str], sizes: list[int], runs: int) -> list[dict[str, Any]]:
    """Per place and repository size: runs of DAG_ID, each worker pod cloning the repository in its init container."""
    results = []
    sparse = bool(PROFILE["dags"]["gitSync"].get("sparseCheckout"))
    with tempfile.TemporaryDirectory(prefix="bench-clone-") as tmp, api_client() as api:
        for place in places:
            for megabytes in sizes:
                step(f"{runs} runs with {megabytes} MiB more in {PLACES[place]}")
                commit = push_repository_of(megabytes, place, Path(tmp))
                runs_done = [timed_run(api) for _ in range(runs)]
                result = {"place": place, "sparse_checkout": sparse, "megabytes": megabytes, "commit": commit}
                results.append(result | {"runs": runs_done})
    return results


def local_stack_runs(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-local-") as tmp, running_stack(Path(tmp)) as (_, api):
        return [time_local_run(api)[0] for _ in range(runs)]


def stats(values: list[float]) -> str:
    return f"{min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f}"


def task_phase_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per phase: the median over runs of the mean over the run's tasks (the phases the runs hold: an older
    cluster.json may name them differently)."""
    labels = list(next(iter(runs[0]["tasks"].values())))
    return {
        label: statistics.median(statistics.mean(t[label] for t in run["tasks"].values()) for run in runs)
        for label in labels
    }


def comparison(before: dict[str, Any], after: dict[str, Any], label: str) -> str:
    """A before/after table of the KubernetesExecutor figures (``before`` is an earlier cluster.json)."""
    old, new = task_phase_medians(before["runs"]), task_phase_medians(after["runs"])
    lines = [f"## Before and after: {label}", "", "| per task (mean of the tasks, median of the runs) | before s | "
             "after s |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {name} | {old[name]:.2f} | {new[name]:.2f} |" for name in old if name in new]
    wall = [statistics.median(r["trigger_to_success"] for r in data["runs"]) for data in (before, after)]
    lines.append(f"| **{DAG_ID}: trigger -> success** | {wall[0]:.1f} | {wall[1]:.1f} |")
    return "\n".join(lines)


CHAIN = ("extract", "transform", "load")  # example_dataframe_pipeline runs its tasks one after another


def critical_path(run: dict[str, Any]) -> dict[str, float]:
    """The run's seconds from trigger to success, in order: scheduling gaps and each task queued -> ended."""
    t = run["timeline"]
    path = {"trigger -> extract queued (run created, scheduled)": t[CHAIN[0]]["queued"]}
    for index, task in enumerate(CHAIN):
        if index:
            upstream = CHAIN[index - 1]
            path[f"{upstream} ended -> {task} queued (scheduler)"] = t[task]["queued"] - t[upstream]["ended"]
        path[f"{task}: queued -> ended (pod start, task)"] = t[task]["ended"] - t[task]["queued"]
    path[f"{CHAIN[-1]} ended -> run success seen by the client"] = run["trigger_to_success"] - t[CHAIN[-1]]["ended"]
    return path


def report(data: dict[str, Any]) -> str:
    lines = ["## Setting up", "", "| step | seconds |", "|---|---:|"]
    for name, seconds in data["setup"].items():
        lines.append(f"| {name} | {seconds:.1f} |")
    lines += ["", "## `scripts/deploy install`, by step", "", "| step | cold s | cached s |", "|---|---:|---:|"]
    cold, warm = data["deploy"]["cold"]["phases"], data["deploy"]["cached"]["phases"]
    for name in cold:
        lines.append(f"| {name} | {cold[name]:.1f} | {warm[name]:.1f} |")
    lines.append(f"| **total** | {data['deploy']['cold']['seconds']:.1f} | {data['deploy']['cached']['seconds']:.1f} |")
    runs = data["runs"]
    lines += ["", f"## {DAG_ID}: trigger -> success", "", "| executor | n | min s | median s | max s |"]
    lines += ["|---|---:|---:|---:|---:|"]
    lines.append(f"| KubernetesExecutor (local cluster, a pod per task) | {len(runs)} | "
                 f"{stats([r['trigger_to_success'] for r in runs])} |")  # fmt: skip
    if data.get("local_stack"):
        lines.append(
            f"| LocalExecutor (`make up`, SQLite) | {len(data['local_stack'])} | {stats(data['local_stack'])} |"
        )
    paths = [critical_path(run) for run in runs]
    lines += ["", "## The run's critical path (median over the runs)", "", "| span | seconds |", "|---|---:|"]
    lines += [f"| {span} | {statistics.median(p[span] for p in paths):.1f} |" for span in paths[0]]
    tasks = sorted({task for run in runs for task in run["tasks"]}, key=CHAIN.index)
    lines += ["", "## Where a KubernetesExecutor task's seconds go (median over the runs)", ""]
    lines += ["| phase | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    stored = list(runs[0]["tasks"][tasks[0]])  # an older cluster.json holds fewer phases
    split = PHASES[1][0] in stored  # created -> running in three phases: CLONE_PHASE is their sum, not a row
    for label in [label for label in stored if not (split and label == CLONE_PHASE)]:
        cells = [statistics.median(run["tasks"][task][label] for run in runs) for task in tasks]
        lines.append(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def clone_report(results: list[dict[str, Any]]) -> str:
    """Per place and repository size: the worker pods' created -> running (the git-sync init container clones in it),
    against the smallest size measured in that place (results of before --clone-places: the DAG folder)."""
    sparse = {r.get("sparse_checkout", False) for r in results}
    lines = [
        "## What a DAG clone costs each worker pod", "",
        "Every KubernetesExecutor pod clones the DAG repository (depth 1) in its git-sync init container before "
        "Airflow starts. Random bytes added to the repository (incompressible: Git stores and sends them in full; "
        "text compresses several-fold), in the DAG folder or beside it, against the same pipeline; "
        f"dags.gitSync.sparseCheckout {'on' if sparse == {True} else 'off'} (the kind profile's). Pod created -> "
        "running holds the clone; median over the runs of the mean over the run's tasks.", "",
        "| MiB added to | MiB | runs | pod created -> running s | more than the fewest MiB s "
        "| trigger -> success s (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for place in dict.fromkeys(r.get("place", "dags") for r in results):
        here = [r for r in results if r.get("place", "dags") == place]
        per_size = {r["megabytes"]: task_phase_medians(r["runs"])[CLONE_PHASE] for r in here}
        base = per_size[min(per_size)]
        for r in here:
            wall = statistics.median(run["trigger_to_success"] for run in r["runs"])
            size = r["megabytes"]
            cells = [PLACES[place], size, len(r["runs"]), f"{per_size[size]:.2f}", f"{per_size[size] - base:+.2f}"]
            lines.append("| " + " | ".join(str(cell) for cell in [*cells, f"{wall:.1f}"]) + " |")
    return "\n".join(lines)


def build_tools_cold() -> float:
    """`scripts/bootstrap cluster` with its stamps removed and an empty Go build cache."""
    for stamp in (".kubernetes-stamp", ".coredns-stamp"):
        (CLUSTER_BIN / stamp).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-gocache-") as cache:
        return timed([str(ROOT / "scripts" / "bootstrap"), "cluster"], env={**os.environ, "GOCACHE": cache})[0]


def build_images(*, cold: bool) -> dict[str, float]:
    if cold:
        step("removing the images and Docker's build cache (--cold)")
        names = [s.image for s in images.standins().values()] + [images.APP_IMAGE]
        images.docker("image", "rm", "--force", *names, check=False)
        images.docker("builder", "prune", "--all", "--force", check=False)
    label = "cold" if cold else "cached"
    step(f"images ({label})")
    build = [str(IMAGES_SCRIPT), "build"]
    return {
        f"make images ({label}: debootstrap, stand-ins, airflow-azblob:local)": timed(build)[0],
        "make images (cached)": timed(build)[0],
    }


def measure_cluster(data: dict[str, Any], runs: int) -> None:
    """cluster-up and deploy without and with the image cache, then the KubernetesExecutor runs."""
    step("cluster-up without the cluster's image cache")
    cluster_cli("down", "--purge")
    data["setup"]["make cluster-up (no image cache: imports the pause image)"] = cluster_cli("up")
    step("deploy into the fresh cluster (every image imported)")
    seconds, phases = deploy()
    data["deploy"]["cold"] = {"seconds": seconds, "phases": phases}
    data["setup"]["make cluster-down (with the release running)"] = cluster_cli("down")
    step("cluster-up and deploy again, with the image cache")
    data["setup"]["make cluster-up (image cache kept)"] = cluster_cli("up")
    seconds, phases = deploy()
    data["deploy"]["cached"] = {"seconds": seconds, "phases": phases}
    step(f"{runs} runs of {DAG_ID} under the KubernetesExecutor")
    data["runs"] = cluster_runs(runs)


def write_docs(data: dict[str, Any], text: str, flags: str) -> None:
    DATA.write_text(json.dumps(data, indent=2) + "\n")
    DOCS.write_text(
        f"# Local cluster benchmark\n\nGenerated by `make bench-cluster` (scripts/bench_cluster.py{flags}) on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: the local cluster of `make cluster-up` (Kubernetes "
        f"{cluster_version()} as processes, containerd, one node), the chart with config/profiles/kind.yaml + "
        "scripts/localcluster/values.yaml, Azurite and PostgreSQL in the cluster. "
        "Raw numbers: [cluster.json](cluster.json). The production shape's numbers (scheduler failover, an "
        "api-server rollout during a run, latency through the ingress against a port-forward) and what each "
        "container uses come from the cluster suite itself: [cluster-suite.md](cluster-suite.md).\n\n"
        f"{text}\n"
    )
    print(f"wrote {DOCS} and {DATA}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="remove the images and Docker's build cache first")
    parser.add_argument("--cold-tools", action="store_true", help="rebuild the cluster binaries, empty Go cache")
    parser.add_argument("--no-local-stack", action="store_true", help="skip the LocalExecutor comparison")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--clone-sizes", default="0,1,50,200", help="MiB added to the DAG repository, comma-separated")
    parser.add_argument("--clone-runs", type=int, default=2, help="runs per repository size")
    parser.add_argument("--clone-places", default=",".join(PLACES), help=f"where the MiB go, of {', '.join(PLACES)}")
    parser.add_argument("--baseline", type=Path, help="a cluster.json of an earlier run to compare the runs with")
    parser.add_argument("--baseline-label", default="the change", help="what changed since the baseline")
    only = "cluster-up, deploy and the clone's cost alone; its section replaces the one in the docs"
    parser.add_argument("--clone-only", action="store_true", help=only)
    args = parser.parse_args()
    sizes = [int(size) for size in args.clone_sizes.split(",") if size.strip()]
    places = [place.strip() for place in args.clone_places.split(",") if place.strip()]
    if unknown := set(places) - set(PLACES):
        parser.error(f"--clone-places: {', '.join(sorted(unknown))} unknown; choose from {', '.join(PLACES)}")
    if args.clone_only:
        clone_only(places, sizes, args.clone_runs, write=not args.no_write)
        return
    data: dict[str, Any] = {"setup": {}, "deploy": {}}
    if args.cold_tools:
        step("building the Kubernetes binaries and CoreDNS with an empty Go build cache (--cold-tools)")
        data["setup"]["make install: Kubernetes binaries + CoreDNS (empty Go build cache)"] = build_tools_cold()
    started_docker = images.start_docker()
    try:
        data["setup"] |= build_images(cold=args.cold)
        measure_cluster(data, args.runs)
        if sizes:
            step(f"the clone's cost: repositories {sizes} MiB larger, {args.clone_runs} runs each")
            data["clone"] = clone_cost(places, sizes, args.clone_runs)
    finally:
        cluster_cli("down")
        if started_docker:
            images.stop_docker()
    if not args.no_local_stack:
        step(f"{args.runs} runs of {DAG_ID} on the local stack (LocalExecutor)")
        data["local_stack"] = local_stack_runs(args.runs)
    text = full_report(data)
    if args.baseline:
        text += "\n\n" + comparison(json.loads(args.baseline.read_text()), data, args.baseline_label)
    print(text)
    if not args.no_write:
        flags = "".join(f" --{name.replace('_', '-')}" for name in ("cold", "cold_tools") if getattr(args, name))
        write_docs(data, text, flags)


def full_report(data: dict[str, Any]) -> str:
    text = report(data)
    return text + "\n\n" + clone_report(data["clone"]) if data.get("clone") else text


def clone_only(places: list[str], sizes: list[int], runs: int, *, write: bool) -> None:
    """The clone's cost alone, on a cluster brought up and deployed for it; written into the existing cluster.json
    and cluster.md in place of their clone section (the rest keeps its earlier run)."""
    started_docker = images.start_docker()
    try:
        timed([str(IMAGES_SCRIPT), "build"])
        cluster_cli("up")
        deploy()
        clone = clone_cost(places, sizes, runs)
    finally:
        cluster_cli("down")
        if started_docker:
            images.stop_docker()
    print(clone_report(clone))
    if write:
        data = json.loads(DATA.read_text()) | {"clone": clone}
        flags = " --clone-only (the clone section; the rest from the run before)"
        write_docs(data, full_report(data), flags)


def cluster_version() -> str:
    text = (KUBERNETES_MODULE / "go.mod").read_text()
    return next(line.split()[1] for line in text.splitlines() if line.strip().startswith("k8s.io/kubernetes "))


if __name__ == "__main__":
    main()
