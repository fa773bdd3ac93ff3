"""What each container of the local cluster uses, read from the node's cgroups while the cluster suite runs: peak
memory and average CPU per (component, container), so the chart's default resource requests can be sized from a
measurement (scripts/bench_cluster_suite.py writes the table to docs/benchmarks/cluster-suite.md).

The local cluster is one node on this machine, so its containers' cgroups are this machine's (cgroup v1, the kubelet's
cgroupfs driver): /sys/fs/cgroup/{memory,cpuacct}/kubepods/[<qos>/]pod<uid>/<container id>/. A sampler thread reads
each container's memory.max_usage_in_bytes (the peak since it started) and cpuacct.usage every ``interval`` seconds,
and maps container ids to pods through the apiserver. A worker pod that lives less than one interval may be missed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CGROUP = Path("/sys/fs/cgroup")


@dataclass
class Seen:
    """One container's readings: its peak memory and its CPU time between the first and the last sample."""

    component: str
    container: str
    init: bool
    peak_bytes: int = 0
    first: tuple[float, int] | None = None  # (wall time, cpu ns)
    last: tuple[float, int] | None = None

    @property
    def cores(self) -> float | None:
        if not (self.first and self.last) or self.last[0] - self.first[0] < 1:
            return None
        return (self.last[1] - self.first[1]) / 1e9 / (self.last[0] - self.first[0])


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def container_cgroups() -> dict[str, Path]:
    """container id -> its memory cgroup directory, for every container of every pod on this node."""
    found = {}
    for pod_dir in (CGROUP / "memory" / "kubepods").glob("**/pod*"):
        for container_dir in pod_dir.iterdir():
            if container_dir.is_dir() and len(container_dir.name) == 64:
                found[container_dir.name] = container_dir
    return found


@dataclass
class UsageSampler:
    """Samples until stopped; ``pods()`` returns the apiserver's pod list (all namespaces)."""

    pods: Callable[[], list[dict[str, Any]]]
    interval: float = 2.0
    seen: dict[str, Seen] = field(default_factory=dict)
    _names: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _refresh_names(self) -> None:
        for pod in self.pods():
            labels = pod["metadata"].get("labels", {})
            component = labels.get("app.kubernetes.io/component") or labels.get("component") or pod["metadata"]["name"]
            if "kubernetes_executor" in labels:
                component = "worker"
            status = pod.get("status", {})
            for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
                for container in status.get(key, []):
                    if cid := container.get("containerID", "").rpartition("://")[2]:
                        self._names[cid] = (component, container["name"], init)

    def sample(self) -> None:
        now = time.time()
        cgroups = container_cgroups()
        if cgroups.keys() - self._names.keys():
            self._refresh_names()
        for cid, memory_dir in cgroups.items():
            if cid not in self._names:
                continue
            component, container, init = self._names[cid]
            seen = self.seen.setdefault(cid, Seen(component, container, init))
            peak = _read_int(memory_dir / "memory.max_usage_in_bytes")
            cpu_dir = CGROUP / "cpuacct" / memory_dir.relative_to(CGROUP / "memory")
            cpu = _read_int(cpu_dir / "cpuacct.usage")
            if peak is not None:
                seen.peak_bytes = max(seen.peak_bytes, peak)
            if cpu is not None:
                seen.first = seen.first or (now, cpu)
                seen.last = (now, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
                continue  # a pod came or went mid-read: the next sample sees it

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def summary(self) -> list[dict[str, Any]]:
        """Per (component, container): containers seen, the highest peak memory, the median average CPU."""
        groups: dict[tuple[str, str, bool], list[Seen]] = {}
        for seen in self.seen.values():
            groups.setdefault((seen.component, seen.container, seen.init), []).append(seen)
        rows = []
        for (component, container, init), items in sorted(groups.items()):
            cores = [s.cores for s in items if s.cores is not None]
            rows.append(
                {
                    "component": component,
                    "container": container,
                    "init": init,
                    "containers_seen": len(items),
                    "peak_memory_mib": round(max(s.peak_bytes for s in items) / 2**20, 1),
                    "median_cpu_millicores": round(statistics.median(cores) * 1000, 1) if cores else None,
                    "max_cpu_millicores": round(max(cores) * 1000, 1) if cores else None,
                }
            )
        return rows
