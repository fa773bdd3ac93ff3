"""Pushed to the local cluster by scripts/bench_cluster_load.py: a run of about 300 tasks under the
KubernetesExecutor, each in a worker pod of its own.

``plan`` decides how many ``produce`` tasks are mapped (the run's conf ``mapped``, 280 by default); each pushes a
small DataFrame of its own through the XCom backend and ``check`` pulls them all and compares each with the frame
its index must have produced. Beside them, PLAIN independent tasks that return a dict, the shape of a DAG's many
small steps. The frames are small on purpose: the benchmark measures scheduling, pods and the api-server, not Blob.
"""

from __future__ import annotations

import pandas as pd
import pendulum
from airflow.sdk import dag, get_current_context, task

PLAIN = 18
MAPPED = 280
ROWS = 1_000


def frame_for(index: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(index * ROWS, (index + 1) * ROWS), "index": index})


@dag(
    dag_id="bench_scale_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=1024,  # Airflow's default per DAG is 16: let [core] parallelism be the limit
    tags=["benchmark"],
)
def bench_scale_dag() -> None:
    @task
    def plan() -> list[int]:
        mapped = int(get_current_context()["dag_run"].conf.get("mapped", MAPPED))
        return list(range(mapped))

    @task
    def produce(index: int) -> pd.DataFrame:
        return frame_for(index)

    @task
    def check(frames: list[pd.DataFrame]) -> int:
        for index, frame in enumerate(frames):
            pd.testing.assert_frame_equal(frame, frame_for(index), check_exact=True)
        return len(frames)

    @task
    def plain(step: int) -> dict[str, int]:
        return {"step": step}

    check(produce.expand(index=plan()))
    for step in range(PLAIN):
        plain.override(task_id=f"plain_{step:02d}")(step)


bench_scale_dag()
