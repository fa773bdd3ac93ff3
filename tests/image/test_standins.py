"""Each stand-in image (scripts/localcluster/standins/standins.yaml) holds the contract the chart and the project's
Dockerfile rely on.

The stand-ins exist only because this machine reaches no registry; users pull the official images. So every check
runs what the chart renders (config/profiles/kind.yaml + scripts/localcluster/values.yaml): the same command,
arguments, env, user and read-only root filesystem, through tests/support/containers.py.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.devstack.services import AZURITE_ACCOUNT, azurite_connection_string
from scripts.localcluster.images import APP_IMAGE, standin_for, standins
from scripts.paths import LOCAL_CLUSTER_VALUES, ROOT
from tests.support.containers import Container, docker, run_rendered
from tests.support.helm import Manifest, all_containers, render

pytestmark = pytest.mark.slow
LOCAL_CLUSTER = ("kind", "local-cluster")


@pytest.fixture(scope="module")
def rendered(built_images: dict[str, float]) -> Manifest:
    return render(profile=LOCAL_CLUSTER)


def pod_and_container(manifest: Manifest, kind: str, name: str, container: str) -> tuple[dict, dict]:
    pod = manifest.get(kind, name)["spec"]["template"]["spec"]
    return pod, next(c for c in all_containers(pod) if c["name"] == container)


def chart_images(manifest: Manifest) -> set[str]:
    return {c["image"] for _, spec in manifest.pod_specs() for c in all_containers(spec)}


def test_the_local_cluster_profile_runs_only_stand_ins_and_the_image_built_here(rendered: Manifest) -> None:
    built = {standin.image for standin in standins().values()} | {APP_IMAGE}
    assert chart_images(rendered) <= built


def test_the_profile_names_the_stand_in_of_each_image_the_chart_pulls_by_default() -> None:
    defaults = yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())["images"]
    profile = yaml.safe_load(LOCAL_CLUSTER_VALUES.read_text())["images"]
    for key, image in profile.items():
        default = f"{defaults[key]['repository']}:{defaults[key]['tag']}"
        assert f"{image['repository']}:{image['tag']}" == standin_for(default), key


# ------------------------------------------------------------------------------------------------ Airflow


def airflow(*args: str, user: str = "50000:0", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    flags = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    return docker("run", "--rm", "--user", user, *flags, standins()["airflow"].image, *args)


NO_DB_WAIT = {"CONNECTION_CHECK_MAX_COUNT": "0"}


def test_airflow_user_home_and_airflow_home_match_the_official_image() -> None:
    done = airflow("bash", "-c", 'echo "$(id -un) $(id -u):$(id -g) $HOME $AIRFLOW_HOME $(pwd)"', env=NO_DB_WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["airflow", "50000:0", "/home/airflow", "/opt/airflow", "/opt/airflow"]


def test_pip_as_the_airflow_user_installs_into_home_airflow_local_first_on_path() -> None:
    code = "import sys, shutil; print(sys.prefix, shutil.which('pip'), shutil.which('airflow'))"
    done = airflow("python", "-c", code, env=NO_DB_WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "/home/airflow/.local",
        "/home/airflow/.local/bin/pip",
        "/home/airflow/.local/bin/airflow",
    ]


def test_entrypoint_runs_airflow_subcommands_with_or_without_a_leading_airflow() -> None:
    for args in (["version"], ["airflow", "version"]):
        done = airflow(*args, env=NO_DB_WAIT)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "3.3.2"


def test_entrypoint_passes_bash_and_python_through() -> None:
    assert airflow("bash", "-c", "echo $0", env=NO_DB_WAIT).stdout.strip() == "/bin/bash"
    assert airflow("python", "-c", "print(6 * 7)", env=NO_DB_WAIT).stdout.strip() == "42"


def test_entrypoint_waits_for_the_db_before_anything_else_and_gives_up_after_the_max_count() -> None:
    env = {
        "CONNECTION_CHECK_MAX_COUNT": "2",
        "CONNECTION_CHECK_SLEEP_TIME": "0",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://nobody:x@127.0.0.1:1/none",
    }
    done = airflow("bash", "-c", "echo the command ran", env=env)
    assert done.returncode == 1
    assert "Maximum number of retries (2) reached" in done.stderr
    assert "the command ran" not in done.stdout


def test_an_arbitrary_uid_in_group_0_gets_a_passwd_entry_and_the_airflow_home() -> None:
    done = airflow("bash", "-c", 'echo "$(whoami) $HOME"', user="12345:0", env=NO_DB_WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["default", "/home/airflow"]
    refused = airflow("bash", "-c", "true", user="12345:12345", env=NO_DB_WAIT)
    assert refused.returncode == 1
    assert "Run the image with GID 0" in refused.stderr


def test_the_virtualenv_ships_no_bytecode_like_the_official_image() -> None:
    done = airflow("bash", "-c", "find /home/airflow/.local -name '*.pyc' | wc -l", env=NO_DB_WAIT)
    assert done.stdout.strip() == "0"


def test_git_is_installed_for_gitdagbundle() -> None:
    assert airflow("bash", "-c", "git --version", env=NO_DB_WAIT).stdout.startswith("git version")


# ---------------------------------------------------------------------------------------------- PostgreSQL


def psql(container: Container, sql: str, password: str) -> subprocess.CompletedProcess:
    return container.exec(
        "psql", "-h", "127.0.0.1", "-U", "airflow", "-d", "airflow", "-tAc", sql, env={"PGPASSWORD": password}
    )


def test_postgres_initialises_as_the_chart_runs_it_and_keeps_the_official_defaults(rendered: Manifest) -> None:
    pod, container = pod_and_container(rendered, "StatefulSet", "postgresql", "postgresql")
    probe = container["readinessProbe"]["exec"]["command"]
    with run_rendered(container, pod, env={"POSTGRES_PASSWORD": "s3cret"}) as running:
        running.wait_until("the readiness probe passes", lambda: running.exec(*probe).returncode == 0, timeout=60)
        assert psql(running, "SHOW server_encoding", "s3cret").stdout.strip() == "UTF8"
        assert psql(running, "CREATE TABLE t (x int); SELECT current_user", "s3cret").stdout.split() == [
            "CREATE",
            "TABLE",
            "airflow",
        ]
        wrong = psql(running, "SELECT 1", "wrong")
        assert wrong.returncode != 0
        assert "password authentication failed" in wrong.stderr


# ------------------------------------------------------------------------------------------------- Azurite


def test_azurite_serves_blobs_as_the_chart_runs_it(rendered: Manifest) -> None:
    from azure.storage.blob import BlobServiceClient

    pod, container = pod_and_container(rendered, "Deployment", "azurite", "azurite")
    with run_rendered(container, pod) as running:
        host = running.ip()
        running.wait_until("Azurite listening", lambda: "successfully listens" in running.logs(), timeout=60)
        service = BlobServiceClient.from_connection_string(azurite_connection_string(host, 10000))
        blob = service.create_container("contract").get_blob_client("hello.txt")
        blob.upload_blob(b"stand-in")
        assert blob.download_blob().readall() == b"stand-in"
        assert service.account_name == AZURITE_ACCOUNT


# ------------------------------------------------------------------------------------------ the Git server


def git_server_pod() -> dict[str, Any]:
    manifests = yaml.safe_load_all((ROOT / "config" / "kind" / "dags-git.yaml").read_text())
    deployment = next(doc for doc in manifests if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    for container in all_containers(pod):
        container["image"] = standin_for(container["image"])
    return pod


def test_the_git_server_serves_pushes_as_its_manifest_runs_it(built_images: dict[str, float]) -> None:
    pod = git_server_pod()
    init, daemon = pod["initContainers"][0], pod["containers"][0]
    with run_rendered(daemon, pod) as running:
        created = running.exec(*init["command"], env={"HOME": "/tmp"})  # the init container, in the same volume
        assert created.returncode == 0, created.stderr
        url = f"git://{running.ip()}:9418/dags.git"
        running.wait_until("git daemon listening", lambda: "Ready to rumble" in running.logs(), timeout=30)
        pushed = subprocess.run(
            [ROOT / "scripts" / "push-dags", "--source", ROOT / "dags", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        with tempfile.TemporaryDirectory() as clone:
            subprocess.run(["git", "clone", "--quiet", "--branch", "main", url, clone], check=True, timeout=60)
            assert (Path(clone) / "dags" / "example_dataframe_pipeline.py").exists()


# ----------------------------------------------------------------------------------------------- git-sync


def test_git_sync_clones_the_pushed_dags_as_a_worker_pods_init_container_runs_it(
    built_images: dict[str, float],
) -> None:
    """The stand-in built from upstream's source, run exactly as the chart renders the worker pod's one-shot clone
    (entrypoint, uid 65533, read-only root, GITSYNC_* variables, --one-time, the sparse checkout of the DAG folder),
    against the Git server stand-in."""
    pod = git_server_pod()
    init, daemon = pod["initContainers"][0], pod["containers"][0]
    with run_rendered(daemon, pod) as server:
        assert server.exec(*init["command"], env={"HOME": "/tmp"}).returncode == 0
        url = f"git://{server.ip()}:9418/dags.git"
        server.wait_until("git daemon listening", lambda: "Ready to rumble" in server.logs(), timeout=30)
        pushed = subprocess.run(
            [ROOT / "scripts" / "push-dags", "--source", ROOT / "dags", url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        values = {
            "dags.mode": "gitSync", "dags.gitSync.repo": url, "dags.gitSync.ref": "main",
            "dags.gitSync.subPath": "dags",
        }  # fmt: skip
        manifest = render(values, profile=LOCAL_CLUSTER)
        template = manifest.worker_pod_template()["spec"]
        clone = next(c for c in template["initContainers"] if c["name"] == "git-sync-init")
        assert clone["image"] == standins()["git-sync"].image
        # The kind profile's sparse checkout: the patterns come from a ConfigMap of the release.
        config_maps = {c["metadata"]["name"]: c["data"] for c in manifest.of_kind("ConfigMap")}
        with run_rendered(clone, template, config_maps=config_maps) as syncing:
            syncing.wait_until_exited(timeout=120)
            assert syncing.state()["ExitCode"] == 0, syncing.logs()[-3000:]
            dags = syncing.volume("dags") / "repo" / "dags"
            assert (dags / "example_dataframe_pipeline.py").is_file(), syncing.logs()[-3000:]
            assert (syncing.volume("dags") / "repo").is_symlink()
            assert dags.resolve().stat().st_uid == 65533


def test_git_sync_says_which_version_it_is(built_images: dict[str, float]) -> None:
    done = docker("run", "--rm", standins()["git-sync"].image, "--version")
    assert done.stdout.strip() == "v4.7.1", done.stdout + done.stderr


# ----------------------------------------------------------------------------------------------- the pause


def test_the_pause_image_sleeps_until_sigterm_and_then_exits_at_once(built_images: dict[str, float]) -> None:
    name = "contract-pause"
    docker("rm", "--force", name)
    started = docker("run", "--detach", "--name", name, "--read-only", "--cap-drop", "ALL", standins()["pause"].image)
    assert started.returncode == 0, started.stderr
    try:
        stopped = docker("stop", "--time", "10", name, timeout=30)
        assert stopped.returncode == 0, stopped.stderr
        state = yaml.safe_load(docker("inspect", "--format", "{{json .State}}", name).stdout)
        assert state["ExitCode"] == 128 + 15  # its own SIGTERM handler, not docker's SIGKILL after 10 s
    finally:
        docker("rm", "--force", name)


# ------------------------------------------------------------------------------------------- statsd_exporter


def scrape(host: str, port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_statsd_exporter_turns_airflows_tagged_statsd_into_labelled_metrics_as_the_chart_runs_it(
    built_images: dict[str, float],
) -> None:
    manifest = render({"metrics.enabled": True}, profile=LOCAL_CLUSTER)
    pod, container = pod_and_container(manifest, "Deployment", "statsd-exporter", "statsd-exporter")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    with run_rendered(container, pod) as running:
        host = running.ip()
        running.wait_until("the exporter serving /metrics", lambda: scrape(host, ports["metrics"]), timeout=30)
        line = re.compile(r'^airflow_ti_finish\{dag_id="d",state="success",task_id="t"\} \d+$', re.M)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:

            def sent_and_counted() -> bool:
                # UDP: a packet the listener was not up for is lost, so send until the metric shows.
                sock.sendto(b"airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c", (host, ports["statsd"]))
                return bool(line.search(scrape(host, ports["metrics"])))

            running.wait_until("a tagged StatsD counter served as a labelled metric", sent_and_counted, timeout=30)
