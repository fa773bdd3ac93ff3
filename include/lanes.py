"""Task lanes: which executor a task asks for, so one DAG file runs on every deployment of this template.

With the chart's `executor: KubernetesExecutor,LocalExecutor` a task runs in a pod of its own by default, and a task
that asks for `executor="LocalExecutor"` runs as a subprocess of the scheduler: no pod to create, schedule and start,
so a tiny task finishes in about a second instead of a pod's few (docs/benchmarks/lanes.md).
Airflow refuses to parse a DAG whose task names an executor [core] executor does not list, so a DAG written for the
fast lane would break where there is none (a KubernetesExecutor-only release). `fast_lane()` asks for the LocalExecutor
only where it is a second lane, and otherwise leaves the task on the default executor:

    @task(executor=fast_lane())
    def summarize(frame): ...

The scheduler and every worker pod read the same airflow.cfg, so the dag-processor, the scheduler and the task agree.
"""

from __future__ import annotations

FAST_LANE = "LocalExecutor"


def configured_executors() -> list[str]:
    """The executors of [core] executor every team shares, the default first (split as Airflow splits them)."""
    from airflow.sdk.configuration import conf

    shared = str(conf.get("core", "executor")).split(";")[0].strip("=")
    return [name.strip() for name in shared.split(",") if name.strip()]


def fast_lane() -> str | None:
    """The LocalExecutor where it is configured beside the default executor, else None (the task keeps the default)."""
    executors = configured_executors()
    return FAST_LANE if FAST_LANE in executors[1:] else None
