"""Benchmark of a task pod against its floor, and of the fast lane, on the local cluster.

    make bench-lanes                   # writes docs/benchmarks/lanes.md and lanes.json
    .venv/bin/python scripts/bench_lanes.py --runs 2 --no-write

Owns the machine while it runs, like `make bench-cluster`: the local cluster is brought up, deployed to with the
kind profile (scripts/deploy install) and taken down at the end.
1. The floor of a pod: a bare pod of the release's image, with the worker pods' security context and nothing else
   (no init container, no volumes), running `python -c pass`, then one importing what a task imports
   (airflow.sdk, pandas, pyarrow): created -> running -> finished -> deleted, deleted as soon as it finished (as the
   executor does). --floor-runs of each.
2. example_dataframe_pipeline with `executor: KubernetesExecutor`, --runs times: trigger -> success, and per task its
   pod's phases (the ones of docs/benchmarks/cluster.md) set against the floor's.
3. The release upgraded to `executor: KubernetesExecutor,LocalExecutor` (scripts/deploy install with one more
   values file): the same runs,
   where transform and load take the fast lane (include/lanes.py) and run in the scheduler; and the scheduler pod's
   memory (working set, from its cgroup on this node) idle under each executor setting.
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
FLOOR_LABEL = "bench=pod-floor"
FLOOR_COMMANDS = {
    "python -c pass": "pass",
    "python importing airflow.sdk, pandas, pyarrow": "import airflow.sdk, pandas, pyarrow",
}
# The floor's phases. `python -c pass` often ends before the kubelet reports the pod Running, so the floor is
# split where every pod has an event: created -> finished (sandbox, container start, the process, its exit seen)
# and finished -> deleted.
FLOOR_PHASES = (
    ("pod created -> finished (sandbox, container start, the process, its exit seen)", "created", "finished"),
    ("pod finished -> deleted", "finished", "deleted"),
    ("pod lifetime (created -> deleted)", "created", "deleted"),
)


def deploy(*profiles: Path) -> float:
    env = {**os.environ, "KUBECONFIG": str(cluster.PATHS.kubeconfig)}
    argv = [str(ROOT / "scripts" / "deploy"), "--context", cluster.CONTEXT]
    argv += [arg for profile in profiles for arg in ("--profile", str(profile))]
    seconds, _ = timed([*argv, "install"], env=env)
    return seconds


def floor_pod(name: str, code: str) -> dict[str, Any]:
    """A bare pod of the scheduler's image and security context, running ``code``."""
    template = json.loads(kubectl("get", "deployment", SCHEDULER, "-o", "json"))["spec"]["template"]["spec"]
    container = template["containers"][0]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict([FLOOR_LABEL.split("=")])},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": template.get("securityContext", {}),
            "containers": [
                {
                    "name": "base",
                    "image": container["image"],
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", code],
                    "securityContext": container.get("securityContext", {}),
                }
            ],
        },
    }


def floor_runs(runs: int) -> dict[str, list[dict[str, float]]]:
    """Per command, per run: the seconds of FLOOR_PHASES."""
    results: dict[str, list[dict[str, float]]] = {}
    with PodWatch(cluster.PATHS.kubeconfig, NAMESPACE, FLOOR_LABEL) as watch:
        for index, (label, code) in enumerate(FLOOR_COMMANDS.items()):
            results[label] = []
            for run in range(runs):
                name = f"pod-floor-{index}-{run}"
                kubectl("apply", "--filename", "-", input=json.dumps(floor_pod(name, code)))
                airflow_api.wait_for(
                    f"{name} to finish", lambda n=name: (watch.pods().get(n) or None) and watch.pods()[n].finished,
                    timeout=120, interval=0.05,
                )  # fmt: skip
                kubectl("delete", "pod", name, "--wait=false")
                airflow_api.wait_for(
                    f"{name} to be deleted", lambda n=name: watch.pods()[n].deleted, timeout=120, interval=0.05
                )
                life = watch.pods()[name]
                assert "Succeeded" in life.phases, f"{name}: {life.phases}"
                events = {"created": life.created, "finished": life.finished, "deleted": life.deleted}
                results[label].append({phase: events[end] - events[begin] for phase, begin, end in FLOOR_PHASES})
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
        step(f"the floor: bare pods of the image, {floor} runs each")
        data["floor"] = floor_runs(floor)
        with api_client() as api:
            data["memory_kubernetes_mib"] = scheduler_memory()
            step(f"{runs} runs of {DAG_ID}, a pod per task")
            data["pods"] = [timed_run(api) for _ in range(runs)]
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


def floor_report(floor: dict[str, list[dict[str, float]]]) -> list[str]:
    rows = [[phase, *(f"{median([r[phase] for r in floor[c]]):.2f}" for c in floor)] for phase, _, _ in FLOOR_PHASES]
    runs = len(next(iter(floor.values())))
    return [
        "## The floor of a pod",
        "",
        "A bare pod of the release's image (the worker pods' security context; no init container, no volume), "
        f"deleted as soon as it finished; seconds, median of {runs} runs.",
        "",
        *table(["phase", *floor], rows),
    ]


def pod_report(data: dict[str, Any]) -> list[str]:
    """A task pod's phases (bench_cluster.PHASES; the mean of the run's tasks, median of the runs) beside the floor's
    spans that match them."""
    imports = data["floor"][list(FLOOR_COMMANDS)[1]]
    columns = [task_phase_medians(data["pods"])]
    to_finished = [phase for phase, _, _ in PHASES[1:5]]  # pod created -> ... -> pod finished
    floor_of = {PHASES[5][0]: FLOOR_PHASES[1][0], "pod lifetime (created -> deleted)": FLOOR_PHASES[2][0]}
    rows = []
    for phase in columns[0]:
        floor = f"{median([r[floor_of[phase]] for r in imports]):.2f}" if phase in floor_of else ""
        rows.append([phase, *(f"{column[phase]:.2f}" for column in columns), floor])
    rows.append(
        ["**pod created -> finished**", *(f"{sum(column[p] for p in to_finished):.2f}" for column in columns),
         f"{median([r[FLOOR_PHASES[0][0]] for r in imports]):.2f}"]
    )  # fmt: skip
    return [
        "## A task pod against the floor",
        "",
        f"{DAG_ID} under the KubernetesExecutor, a pod per task; seconds per task (the mean of the run's tasks, "
        f"median of {len(data['pods'])} runs); the floor is the bare pod that imports what a task imports.",
        "",
        *table(["phase", "task pod (DAGs by git-sync)", "floor"], rows),
    ]


def lanes_report(pods: list[dict[str, Any]], fast: list[dict[str, Any]]) -> list[str]:
    walls = {
        "a pod per task (KubernetesExecutor)": [r["trigger_to_success"] for r in pods],
        f"transform and load in the fast lane ({FAST_LANE})": [r["trigger_to_success"] for r in fast],
    }
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
        [f"{FAST_LANE} ([core] parallelism 32: the LocalExecutor forks 32 workers at start)",
         f"{data['memory_fast_lane_mib']:.0f}"],
    ]  # fmt: skip
    lines = [
        *floor_report(data["floor"]),
        "",
        *pod_report(data),
        "",
        *lanes_report(data["pods"], data["fast_lane"]),
        "",
        "## The scheduler's memory, idle",
        "",
        *table(["executor", "working set MiB"], memory),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of the DAG per executor setting")
    parser.add_argument("--floor-runs", type=int, default=5, help="bare pods per command")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    data = measure(args.runs, args.floor_runs)
    text = report(data)
    print(text)
    if not args.no_write:
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
