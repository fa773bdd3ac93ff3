"""The worker pod template through the cncf-kubernetes provider's own PodGenerator, as the scheduler builds a
task's pod: the result is schema-valid and keeps the template's git-sync, env, mounts and security context."""

from __future__ import annotations

import datetime
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import GIT_SYNC
from tests.support.helm import KUBE_VERSION, NAMESPACE, Manifest, env_of, render


def build_task_pod(manifest: Manifest, tmp_path: Path) -> dict:
    from airflow.configuration import AirflowConfigParser
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import get_base_pod_from_template
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args

    template = tmp_path / "pod_template_file.yaml"
    template.write_text(manifest.get("ConfigMap", "pod-template")["data"]["pod_template_file.yaml"])
    rendered_cfg = AirflowConfigParser()
    rendered_cfg.read_string(manifest.airflow_cfg())
    kube_config = KubeConfig(executor_conf=rendered_cfg)  # the scheduler's view of [kubernetes_executor]
    base = get_base_pod_from_template(str(template), kube_config)

    class SampleWorkload:
        def model_dump_json(self) -> str:
            return '{"ti": {"dag_id": "example", "task_id": "extract"}}'

    pod = PodGenerator.construct_pod(
        dag_id="example",
        task_id="extract",
        pod_id="example-extract-abc123",
        try_number=1,
        kube_image=kube_config.kube_image,
        date=datetime.datetime(2026, 9, 1, tzinfo=datetime.UTC),
        args=workload_to_command_args(SampleWorkload()),  # type: ignore[arg-type]
        pod_override_object=None,
        base_worker_pod=base,
        namespace=kube_config.kube_namespace,
        scheduler_job_id="42",
        run_id="manual__2026-09-01",
    )
    return PodGenerator.serialize_pod(pod)


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(params=["kind", "git-sync", "image", "aks", "digest"])
def task_pod(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Manifest, dict]:
    values, profile = {
        "kind": ({}, "kind"),
        "git-sync": (GIT_SYNC, None),
        "image": ({}, None),
        "aks": ({}, "aks-example"),
        "digest": ({"images.airflow.digest": DIGEST, "images.gitSync.digest": DIGEST}, "kind"),
    }[request.param]
    manifest = render(values, profile=profile)
    return manifest, build_task_pod(manifest, tmp_path)


def test_the_task_pod_is_valid_for_the_pinned_kubernetes_version(task_pod: tuple[Manifest, dict]) -> None:
    _, pod = task_pod
    kubernetes_validate.validate(pod, ".".join(KUBE_VERSION.split(".")[:2]), strict=True)


def test_the_task_pod_runs_the_sdk_workload_in_the_base_container_with_the_template_image(
    task_pod: tuple[Manifest, dict],
) -> None:
    manifest, pod = task_pod
    (base,) = pod["spec"]["containers"]
    assert pod["metadata"]["namespace"] == NAMESPACE
    assert base["name"] == "base"
    assert base["args"][:4] == ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
    assert base["image"] == manifest.worker_pod_template()["spec"]["containers"][0]["image"]


def test_the_task_pod_keeps_the_template_env_and_adds_the_executor_marker(task_pod: tuple[Manifest, dict]) -> None:
    _, pod = task_pod
    env = env_of(pod["spec"]["containers"][0])
    assert env["AIRFLOW_IS_K8S_EXECUTOR_POD"] == "True"
    assert env["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg"
    assert env["PYTHONPATH"] == "/opt/airflow"
    assert "secretKeyRef" in env["AIRFLOW_CONN_WASB_DEFAULT"]
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in env


def test_the_task_pod_keeps_mounts_security_context_and_labels(task_pod: tuple[Manifest, dict]) -> None:
    _, pod = task_pod
    spec = pod["spec"]
    assert spec["securityContext"]["runAsUser"] == 50000
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["restartPolicy"] == "Never"
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"/opt/airflow/config", "/tmp", "/opt/airflow/logs"} <= mounts
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "worker"
    assert labels["dag_id"] == "example"
    assert labels["task_id"] == "extract"


def test_the_task_pod_syncs_dags_before_the_task_in_git_sync_mode(tmp_path: Path) -> None:
    manifest = render(GIT_SYNC)
    pod = build_task_pod(manifest, tmp_path)
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == "git-sync-init"
    assert env_of(init)["GITSYNC_ONE_TIME"] == "true"
    dags_mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "dags")
    assert dags_mount["mountPath"] == "/git"


def test_the_scheduler_reads_the_template_from_the_path_in_airflow_cfg(tmp_path: Path) -> None:
    manifest = render()
    cfg = manifest.airflow_cfg()
    path = next(line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("pod_template_file"))
    scheduler = manifest.get("Deployment", "scheduler")["spec"]["template"]["spec"]
    mount = next(m for m in scheduler["containers"][0]["volumeMounts"] if m["name"] == "pod-template")
    volume = next(v for v in scheduler["volumes"] if v["name"] == "pod-template")
    key = Path(path).name
    assert path == f"{mount['mountPath']}/{key}"
    assert key in manifest.get("ConfigMap", volume["configMap"]["name"])["data"]
    yaml.safe_load(manifest.get("ConfigMap", "pod-template")["data"][key])


def test_a_digest_pins_every_image_of_the_task_pod_airflow_builds(tmp_path: Path) -> None:
    """Airflow joins worker_container_repository and _tag: with a digest the tag carries it, so the task pod the
    provider builds runs the pinned image, like the chart's own pods."""
    manifest = render({"images.airflow.digest": DIGEST, "images.gitSync.digest": DIGEST}, profile="kind")
    pod = build_task_pod(manifest, tmp_path)
    images = {c["image"] for c in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]}
    assert images == {f"airflow-azblob:local@{DIGEST}", f"registry.k8s.io/git-sync/git-sync:v4.7.1@{DIGEST}"}
    scheduler = manifest.get("Deployment", "scheduler")["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["image"] == f"airflow-azblob:local@{DIGEST}"
