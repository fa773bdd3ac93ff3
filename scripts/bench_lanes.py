"""Benchmark of a task pod against its floor, and of the fast lane, on the local cluster.

    make bench-lanes                   # writes docs/benchmarks/lanes.md and lanes.json
    .venv/bin/python scripts/bench_lanes.py --runs 2 --no-write

Owns the machine while it runs, like `make bench-cluster`: the local cluster is brought up, deployed to with the
kind profile (scripts/deploy install) and taken down at the end.
1. example_dataframe_pipeline with `executor: KubernetesExecutor`, --runs times: trigger -> success, and per task its
   pod's phases (the ones of docs/benchmarks/cluster.md: sandbox, init container, container start, the process,
   the kubelet's teardown, the deletion).
2. The floor of a pod: pods made from one of those worker pods (same image, volumes, security context, service
   account), their command replaced: `python -c pass` (also without the volumes, and with the git-sync init
   container), and Python importing what a task imports (the task runtime, pandas, pyarrow); each deleted as soon
   as it finished (as the executor does), --floor-runs of each; their phases against the task pods'.
3. The release upgraded to `dags.mode: image` with airflow-azblob:baked (the image built with BAKE_DAGS=true: no
   git-sync init container in the worker pods): the same runs.
4. The release upgraded to `[workers] min_heartbeat_interval` 1 (Airflow's is 5): the same runs, for how long the
   task's supervisor takes to exit after the task ended.
5. The release upgraded to `executor: KubernetesExecutor,LocalExecutor` (scripts/deploy install with one more
   values file): the same runs, where transform and load take the fast lane (include/lanes.py) and run in the
   scheduler; and the scheduler pod's memory (working set, from its cgroup on this node) idle under each executor
   setting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import airflow_api
from scripts.bench_cluster import (
    DAG_ID,
    NAMESPACE,
    PHASES,
    api_client,
    cluster_cli,
    iso,
    kubectl,
    step,
    task_phase_medians,
    timed,
    timed_run,
)
from scripts.localcluster import cluster, images
from scripts.localcluster.podwatch import PodWatch
from scripts.paths import IMAGES_SCRIPT, LOCAL_CLUSTER_PROFILES, ROOT

DOCS = ROOT / "docs" / "benchmarks" / "lanes.md"
DATA = ROOT / "docs" / "benchmarks" / "lanes.json"
FAST_LANE = "KubernetesExecutor,LocalExecutor"
SCHEDULER = "airflow-airflow-azblob-scheduler"
BAKED = "airflow-azblob:baked"
IMAGE_MODE = f"dags:\n  mode: image\nimages:\n  airflow:\n    tag: {BAKED.split(':')[1]}\n"
# The supervisor of a task waits for its process's exit in a select() of up to this many seconds (Airflow: 5), and
# sometimes sees the sockets close before the exit: tried at 1 against the default.
HEARTBEAT_KEY, HEARTBEAT = "[workers] min_heartbeat_interval", 1
FLOOR_LABEL = "bench=pod-floor"
IMPORTS = "import airflow.sdk.execution_time.execute_workload, pandas, pyarrow"
# The floor's pods: a worker pod as the executor created it (image, volumes, security context, service account), its
# command replaced; label -> (what of the worker pod it keeps, Python code). The first is the floor.
FLOOR_PODS = {
    "python -c pass": ("volumes", "pass"),
    "the same, bare (no volume, no service account token)": ("", "pass"),
    "the same, with the git-sync init container": ("volumes, init", "pass"),
    "python importing the task runtime, pandas, pyarrow": ("volumes", IMPORTS),
}
# The phases of a pod's life (PodLife.times), each with the task phases (bench_cluster.PHASES) it holds.
FLOOR_PHASES = (
    ("pod created -> sandbox up (network, volumes)", "created", "sandbox", PHASES[1:2]),
    ("sandbox up -> initialized (init containers)", "sandbox", "initialized", PHASES[2:3]),
    ("initialized -> running (container start)", "initialized", "running", PHASES[3:4]),
    ("running -> container exited (the process)", "running", "exited", PHASES[4:7]),
    ("container exited -> pod finished (kubelet: sandbox teardown)", "exited", "finished", PHASES[7:8]),
    ("pod finished -> deleted", "finished", "deleted", PHASES[8:9]),
)


def deploy(*profiles: Path) -> float:
    env = {**os.environ, "KUBECONFIG": str(cluster.PATHS.kubeconfig)}
    argv = [str(ROOT / "scripts" / "deploy"), "--context", cluster.CONTEXT]
    argv += [arg for profile in profiles for arg in ("--profile", str(profile))]
    seconds, _ = timed([*argv, "install"], env=env)
    return seconds


def floor_pod(template: dict[str, Any], name: str, code: str, keep: str) -> dict[str, Any]:
    """A pod like the worker pod ``template`` (as the executor created it) running ``code``; ``keep`` names what it
    keeps of the worker pod beyond its image and security context ("volumes", "init")."""
    worker = template["spec"]
    container = worker["containers"][0] | {"command": ["python", "-c", code], "args": []}
    spec = {key: value for key, value in worker.items() if key not in ("nodeName", "initContainers")}
    if "init" in keep:
        spec["initContainers"] = worker["initContainers"]
    if "volumes" not in keep:
        spec = {key: value for key, value in spec.items() if key != "volumes"} | {"automountServiceAccountToken": False}
        container = {key: value for key, value in container.items() if key != "volumeMounts"}
    spec["containers"] = [container]
    metadata = {"name": name, "labels": dict([FLOOR_LABEL.split("=")])}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def floor_runs(template: dict[str, Any], runs: int) -> dict[str, list[dict[str, float]]]:
    """Per kind of FLOOR_PODS, per run: the seconds of FLOOR_PHASES. One pod at a time, the kinds taking turns,
    each deleted as soon as it finished (as the executor does)."""
    results: dict[str, list[dict[str, float]]] = {label: [] for label in FLOOR_PODS}
    with PodWatch(cluster.PATHS.kubeconfig, NAMESPACE, FLOOR_LABEL) as watch:
        for run in range(runs):
            for index, (label, (keep, code)) in enumerate(FLOOR_PODS.items()):
                name = f"pod-floor-{index}-{run}"
                kubectl("create", "--filename", "-", input=json.dumps(floor_pod(template, name, code, keep)))
                airflow_api.wait_for(
                    f"{name} to finish", lambda n=name: n in watch.pods() and watch.pods()[n].finished,
                    timeout=120, interval=0.05,
                )  # fmt: skip
                life = watch.pods()[name]
                if "Succeeded" not in life.phases:
                    raise RuntimeError(f"{name} ({label}): {life.phases}\n{kubectl('logs', '--all-containers', name)}")
                kubectl("delete", "pod", name, "--wait=false")
                airflow_api.wait_for(
                    f"{name} to be deleted", lambda n=name: watch.pods()[n].deleted, timeout=120, interval=0.05
                )
                times = watch.pods()[name].times()
                results[label].append({phase: times[end] - times[begin] for phase, begin, end, _ in FLOOR_PHASES})
    return results


def lane_run(api: airflow_api.Api) -> dict[str, Any]:
    """One run of DAG_ID where some tasks may run without a pod: trigger -> success, and per task its executor
    and queued -> ended."""
    started = time.monotonic()
    run_id = airflow_api.run_dag(api, DAG_ID, timeout=600, interval=0.25)
    wall = time.monotonic() - started
    tasks = airflow_api.task_instances(api, DAG_ID, run_id)
    per_task = {
        task: {
            "executor": ti["executor"] or "default",
            "queued -> ended": iso(ti["end_date"]) - iso(ti["queued_when"]),
            "started -> ended": iso(ti["end_date"]) - iso(ti["start_date"]),
        }
        for task, ti in tasks.items()
    }
    return {"run_id": run_id, "trigger_to_success": wall, "tasks": per_task}


def working_set_mib(pod: str) -> float:
    """The pod's memory as the kubelet counts it (usage minus inactive file pages), from its cgroup on this node."""
    uid = json.loads(kubectl("get", "pod", pod, "-o", "json"))["metadata"]["uid"]
    slug = f"pod{uid}"
    for folder in Path("/sys/fs/cgroup").glob(f"**/{slug}"):
        if (folder / "memory.usage_in_bytes").exists():  # cgroup v1
            usage, stat_file, inactive = folder / "memory.usage_in_bytes", folder / "memory.stat", "total_inactive_file"
        elif (folder / "memory.current").exists():  # cgroup v2
            usage, stat_file, inactive = folder / "memory.current", folder / "memory.stat", "inactive_file"
        else:
            continue
        stat = dict(line.split() for line in stat_file.read_text().splitlines())
        return (int(usage.read_text()) - int(stat.get(inactive, 0))) / 2**20
    raise RuntimeError(f"no memory cgroup for pod {pod} (uid {uid}) under /sys/fs/cgroup")


def scheduler_memory() -> float:
    """The scheduler's working set once it is settled: the median of 5 readings a second apart."""
    pod = kubectl("get", "pods", "-l", "app.kubernetes.io/component=scheduler", "-o", "name").split()[0]
    readings = []
    for _ in range(5):
        readings.append(working_set_mib(pod.removeprefix("pod/")))
        time.sleep(1)
    return median(readings)


def measure(runs: int, floor: int) -> dict[str, Any]:
    data: dict[str, Any] = {"runs": runs}
    started_docker = images.start_docker()
    try:
        timed([str(IMAGES_SCRIPT), "build"])
        cluster_cli("up")
        step("deploy with the kind profile (executor: KubernetesExecutor)")
        deploy(*LOCAL_CLUSTER_PROFILES)
        specs: list[dict[str, Any]] = []
        config = ["exec", f"deployment/{SCHEDULER}", "--", "airflow", "config", "get-value", "core", "parallelism"]
        data["parallelism"] = int(kubectl(*config))
        with api_client() as api:
            data["memory_kubernetes_mib"] = scheduler_memory()
            step(f"{runs} runs of {DAG_ID}, a pod per task")
            data["pods"] = [timed_run(api, specs) for _ in range(runs)]
        step(f"the floor: pods like the worker pods, running Python alone, {floor} of each")
        data["floor"] = floor_runs(specs[0], floor)
        step(f"{BAKED}: the image with dags/ in it (BAKE_DAGS=true)")
        images.build_app(base=images.standins()["airflow"].image, image=BAKED, bake_dags=True)
        upgrade(IMAGE_MODE, f"dags.mode image (the DAGs in {BAKED}, no git-sync init container)")
        with api_client() as api:
            reparsed(api)
            step(f"{runs} runs of {DAG_ID}, a pod per task, the DAGs in the image")
            data["image_mode"] = [timed_run(api) for _ in range(runs)]
        upgrade(f"config:\n  workers:\n    min_heartbeat_interval: {HEARTBEAT}\n", f"{HEARTBEAT_KEY} {HEARTBEAT}")
        with api_client() as api:
            reparsed(api)
            step(f"{runs} runs of {DAG_ID}, a pod per task, {HEARTBEAT_KEY} {HEARTBEAT}")
            data["heartbeat"] = [timed_run(api) for _ in range(runs)]
        upgrade(f"executor: {FAST_LANE}\n", f"executor: {FAST_LANE}")
        with api_client() as api:
            reparsed(api)
            data["memory_fast_lane_mib"] = scheduler_memory()
            step(f"{runs} runs of {DAG_ID}, transform and load in the fast lane")
            data["fast_lane"] = [lane_run(api) for _ in range(runs)]
    finally:
        cluster_cli("down")
        if started_docker:
            images.stop_docker()
    return data


def upgrade(values: str, what: str) -> None:
    """scripts/deploy install with the local cluster's profiles plus ``values`` (YAML)."""
    step(f"upgrade to {what}")
    with tempfile.TemporaryDirectory() as folder:
        extra = Path(folder) / "values.yaml"
        extra.write_text(values)
        deploy(*LOCAL_CLUSTER_PROFILES, extra)


def reparsed(api: airflow_api.Api) -> None:
    """Wait until the DAG was parsed by the upgraded release's dag-processor (its tasks' executors are part of the
    serialized DAG)."""

    def previous_gone() -> bool:
        pods = json.loads(kubectl("get", "pods", "-l", "app.kubernetes.io/component=dag-processor", "-o", "json"))
        return not any(pod["metadata"].get("deletionTimestamp") for pod in pods["items"])

    airflow_api.wait_reparsed(api, DAG_ID, previous_gone=previous_gone, timeout=180)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = "|---|" + "".join("---:|" for _ in header[1:])
    return ["| " + " | ".join(header) + " |", align, *("| " + " | ".join(row) + " |" for row in rows)]


def pod_report(data: dict[str, Any]) -> list[str]:
    """The task pods' phases (the mean of a run's tasks, median of the runs), as FLOOR_PHASES, against each floor
    pod's (median of its runs), and the task's process split into its bench_cluster.PHASES."""
    task = task_phase_medians(data["pods"])
    columns = {"task pod (DAGs by git-sync)": [sum(task[label] for label, *_ in held) for *_, held in FLOOR_PHASES]}
    if data.get("image_mode"):
        baked = task_phase_medians(data["image_mode"])
        columns["task pod (DAGs in the image)"] = [sum(baked[label] for label, *_ in held) for *_, held in FLOOR_PHASES]
    for kind, lives in data["floor"].items():
        columns[kind] = [median([life[phase] for life in lives]) for phase, *_ in FLOOR_PHASES]
    pod, floor = columns["task pod (DAGs by git-sync)"], columns[next(iter(FLOOR_PODS))]
    rows = [
        [phase, *(f"{column[index]:.2f}" for column in columns.values()), f"{pod[index] - floor[index]:+.2f}"]
        for index, (phase, *_) in enumerate(FLOOR_PHASES)
    ]
    rows.append(["**pod lifetime**", *(f"{sum(c):.2f}" for c in columns.values()), f"{sum(pod) - sum(floor):+.2f}"])
    process = [[label, f"{task[label]:.2f}"] for label, *_ in PHASES[4:7]]
    count = len(next(iter(data["floor"].values())))
    return [
        "## A task pod against the floor",
        "",
        f"{DAG_ID} under the KubernetesExecutor, a pod per task (seconds per task: the mean of the run's tasks, "
        f"median of {len(data['pods'])} runs), against pods made from one of its worker pods (same image, volumes, "
        f"security context, service account) running Python alone, created one at a time and deleted as soon as they "
        f"finished (median of {count} each). The times are a pod watch's: the kubelet reports a pod's state about "
        "once a second, and a step it reports together with the next one counts 0 s.",
        "",
        *table(["phase", *columns, "task pod above `python -c pass`"], rows),
        "",
        "The task pod's process (running -> container exited), split:",
        "",
        *table(["span", "seconds"], process),
    ]


def linger_report(data: dict[str, Any]) -> list[str]:
    """Per setting, the task pods' task ended -> container exited: how long the supervisor took to exit."""
    label = PHASES[6][0]
    settings = {
        f"{HEARTBEAT_KEY} 5 (Airflow's), DAGs by git-sync": data["pods"],
        f"{HEARTBEAT_KEY} 5 (Airflow's), DAGs in the image": data.get("image_mode"),
        f"{HEARTBEAT_KEY} {HEARTBEAT}, DAGs by git-sync": data.get("heartbeat"),
    }
    rows = []
    for setting, runs in settings.items():
        if runs:
            gaps = [task[label] for run in runs for task in run["tasks"].values()]
            over = sum(gap > 3 for gap in gaps)
            rows.append([setting, str(len(gaps)), f"{median(gaps):.2f}", f"{max(gaps):.2f}", str(over)])
    return [
        "## After the task: the supervisor's exit",
        "",
        "Task ended (its end_date) -> the pod's container seen exited, per task pod. Airflow's supervisor reports the "
        "task's state, uploads its log and exits; it waits for its task process in a select() of up to "
        f"{HEARTBEAT_KEY} seconds, and when the process closes its sockets a moment before it exits, the supervisor "
        "sleeps out that whole wait.",
        "",
        *table(["setting", "tasks", "median s", "max s", "tasks over 3 s"], rows),
    ]


def lanes_report(data: dict[str, Any]) -> list[str]:
    pods, fast = data["pods"], data["fast_lane"]
    walls = {"a pod per task (KubernetesExecutor)": [r["trigger_to_success"] for r in pods]}
    if data.get("image_mode"):
        walls["a pod per task, the DAGs in the image (dags.mode image)"] = [
            r["trigger_to_success"] for r in data["image_mode"]
        ]
    if data.get("heartbeat"):
        walls[f"a pod per task, {HEARTBEAT_KEY} {HEARTBEAT}"] = [r["trigger_to_success"] for r in data["heartbeat"]]
    walls[f"transform and load in the fast lane ({FAST_LANE})"] = [r["trigger_to_success"] for r in fast]
    runs = [[label, str(len(v)), f"{min(v):.1f}", f"{median(v):.1f}", f"{max(v):.1f}"] for label, v in walls.items()]
    tasks = []
    for task in pods[0]["tasks"]:
        in_pods = median([run["timeline"][task]["ended"] - run["timeline"][task]["queued"] for run in pods])
        in_lane = median([run["tasks"][task]["queued -> ended"] for run in fast])
        tasks.append([task, fast[0]["tasks"][task]["executor"], f"{in_pods:.2f}", f"{in_lane:.2f}"])
    return [
        f"## {DAG_ID}: a pod per task against the fast lane",
        "",
        *table(["lanes", "n", "min s", "median s", "max s"], runs),
        "",
        *table(
            ["task", "executor in the fast-lane runs", "queued -> ended s, pods", "queued -> ended s, fast lane"], tasks
        ),
    ]


def report(data: dict[str, Any]) -> str:
    memory = [
        ["KubernetesExecutor", f"{data['memory_kubernetes_mib']:.0f}"],
        [f"{FAST_LANE} ([core] parallelism {data['parallelism']}: the LocalExecutor forks that many workers at "
         "start)",
         f"{data['memory_fast_lane_mib']:.0f}"],
    ]  # fmt: skip
    lines = [
        *pod_report(data),
        "",
        *linger_report(data),
        "",
        *lanes_report(data),
        "",
        "## The scheduler's memory, idle",
        "",
        *table(["executor", "working set MiB"], memory),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of the DAG per executor setting")
    parser.add_argument("--floor-runs", type=int, default=5, help="pods of each floor kind")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--from-json", action="store_true", help=f"no cluster: render the report of {DATA.name} again")
    args = parser.parse_args()
    data = json.loads(DATA.read_text()) if args.from_json else measure(args.runs, args.floor_runs)
    text = report(data)
    print(text)
    if not args.no_write:
        if not args.from_json:
            DATA.write_text(json.dumps(data, indent=2) + "\n")
        DOCS.write_text(
            f"# A task pod's floor, and the fast lane\n\nGenerated by `make bench-lanes` (scripts/bench_lanes.py) on "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: the local cluster of `make cluster-up`, the chart "
            "with config/profiles/kind.yaml + scripts/localcluster/values.yaml. Raw numbers: [lanes.json](lanes.json)."
            f"\n\n{text}\n"
        )
        print(f"wrote {DOCS} and {DATA}")


if __name__ == "__main__":
    main()
