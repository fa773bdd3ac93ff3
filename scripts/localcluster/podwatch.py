"""The life of each KubernetesExecutor worker pod, seen through a watch on the apiserver: when it was created, ran,
finished and was deleted (this machine's clock at each event), with its spec as the executor created it.

Used by the cluster tests (a pod per task, built from the chart's template, deleted afterwards) and by
scripts/bench_cluster.py (where the seconds of a task go).

    with PodWatch(kubeconfig, "airflow") as watch:
        ...trigger a DAG run...
        watch.wait_until_gone(timeout=120)
    for pod in watch.pods().values(): print(pod.task_id, pod.created, pod.deleted)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXECUTOR_SELECTOR = "kubernetes_executor=True"
EVENTS = ("created", "sandbox", "initialized", "running", "exited", "finished", "deleted")  # PodLife's, in order


@dataclass
class PodLife:
    name: str
    spec: dict[str, Any]  # the pod as first seen (metadata + spec), as the executor created it
    created: float  # time.time() of the first event
    sandbox: float | None = None  # first event with condition PodReadyToStartContainers (sandbox and network up)
    initialized: float | None = None  # first event with condition Initialized (init containers done)
    running: float | None = None  # first event with phase Running
    exited: float | None = None  # first event with every container terminated (the kubelet saw the processes end)
    finished: float | None = None  # first event with phase Succeeded or Failed (after the sandbox's teardown)
    deleted: float | None = None
    phases: list[str] = field(default_factory=list)

    def times(self) -> dict[str, float | None]:
        """The events in order (created, sandbox, initialized, running, exited, finished, deleted), each at or after
        the one before: a transition the kubelet reported together with a later one (a short process can end before
        the pod was seen Running) gets that later one's time, and one reported early (a pod without init containers
        is Initialized before its sandbox is up) the earlier one's, so its span counts 0 s. None only for what has
        not happened yet."""
        times: dict[str, float | None] = {}
        later = None
        for event in reversed(EVENTS):
            later = getattr(self, event) or later
            times[event] = later
        earlier = 0.0
        for event in EVENTS:
            if times[event] is not None:
                times[event] = earlier = max(earlier, times[event])
        return times

    @property
    def labels(self) -> dict[str, str]:
        return self.spec["metadata"].get("labels") or {}

    @property
    def task_id(self) -> str:
        return self.labels.get("task_id", "")


class PodWatch:
    """Watches the pods matching ``selector`` in ``namespace`` from a background thread until stopped."""

    def __init__(self, kubeconfig: Path, namespace: str, selector: str = EXECUTOR_SELECTOR) -> None:
        from kubernetes import client, config

        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(self._api_client)
        self.namespace = namespace
        self.selector = selector
        self._pods: dict[str, PodLife] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the pod watch did not start within 30 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        from kubernetes import watch

        try:
            listed = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector)
            version = listed.metadata.resource_version
            self._ready.set()
            while not self._stop.is_set():
                stream = watch.Watch().stream(
                    self._core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                    resource_version=version, timeout_seconds=2,
                )  # fmt: skip
                for event in stream:
                    version = event["object"].metadata.resource_version
                    self._record(event["type"], event["object"], time.time())
                    if self._stop.is_set():
                        break
        except BaseException as error:  # reported by pods()/wait_until_gone()
            self._error = error
            self._ready.set()

    def _record(self, kind: str, pod: Any, at: float) -> None:
        name = pod.metadata.name
        phase = pod.status.phase or ""
        with self._lock:
            life = self._pods.get(name)
            if life is None:
                life = self._pods[name] = PodLife(name, self._api_client.sanitize_for_serialization(pod), at)
            if not life.phases or life.phases[-1] != phase:
                life.phases.append(phase)
            conditions = {c.type: c.status for c in pod.status.conditions or ()}
            if conditions.get("PodReadyToStartContainers") == "True" and life.sandbox is None:
                life.sandbox = at
            if conditions.get("Initialized") == "True" and life.initialized is None:
                life.initialized = at
            if phase == "Running" and life.running is None:
                life.running = at
            statuses = pod.status.container_statuses or ()
            if statuses and all(s.state.terminated for s in statuses) and life.exited is None:
                life.exited = at
            if phase in ("Succeeded", "Failed") and life.finished is None:
                life.finished = at
            if kind == "DELETED":
                life.deleted = at

    def pods(self) -> dict[str, PodLife]:
        if self._error:
            raise RuntimeError(f"the pod watch failed: {self._error}") from self._error
        with self._lock:
            return dict(self._pods)

    def wait_until_settled(self, *, count: int, timeout: float) -> dict[str, PodLife]:
        """Wait until at least ``count`` pods were seen and each one was deleted or failed (the executor keeps failed
        pods for inspection); fail after ``timeout`` s."""
        return self._wait(count, timeout, lambda p: p.deleted or "Failed" in p.phases, "deleted or failed")

    def wait_until_gone(self, *, count: int, timeout: float) -> dict[str, PodLife]:
        """Wait until at least ``count`` pods were seen and every one was deleted; fail after ``timeout`` s."""
        return self._wait(count, timeout, lambda p: p.deleted, "deleted")

    def _wait(self, count: int, timeout: float, done: Callable[[PodLife], Any], what: str) -> dict[str, PodLife]:
        deadline = time.monotonic() + timeout
        while True:
            pods = self.pods()
            if len(pods) >= count and all(done(p) for p in pods.values()):
                return pods
            if time.monotonic() > deadline:
                states = {name: (p.phases, bool(p.deleted)) for name, p in pods.items() if not done(p)}
                raise TimeoutError(f"worker pods not all {what} within {timeout:.0f} s: {states}")
            time.sleep(0.2)


def peak(intervals: Iterable[tuple[float | None, float | None]]) -> int:
    """The most intervals open at one time, e.g. pods existing or running at once (an interval with an unknown end
    is left out)."""
    known = [(start, end) for start, end in intervals if start is not None and end is not None]
    events = sorted([(start, 1) for start, _ in known] + [(end, -1) for _, end in known])
    open_now = most = 0
    for _, step in events:  # at a tie the end (-1) sorts first: touching intervals do not overlap
        open_now += step
        most = max(most, open_now)
    return most
