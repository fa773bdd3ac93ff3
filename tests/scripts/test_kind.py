"""scripts/kind: the exact commands of --dry-run, prerequisite errors, and a full `up` against stand-in tools.

No Docker engine or kind runs here. The dry-run output is the contract (cluster config, image build + kind load,
the Git server, helm flags, helm test). The stand-in run replaces docker/kind/kubectl/helm by small scripts that
log their arguments, so the non-dry-run logic (idempotent cluster creation, the port-forwarded push of dags/ to a
real git daemon started exactly as config/kind/dags-git.yaml starts it) is exercised too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts.devstack.services import free_port
from scripts.localcluster.images import standins
from scripts.paths import ROOT

KIND = ROOT / "scripts" / "kind"


def run_kind(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KIND, *args], capture_output=True, text=True, timeout=120, check=False, env=env or os.environ.copy()
    )


def commands(output: str) -> list[list[str]]:
    """The commands a dry run prints (lines starting with '+ '), split as the shell would."""
    return [shlex.split(line[2:]) for line in output.splitlines() if line.startswith("+ ")]


def find(cmds: list[list[str]], *prefix: str) -> int:
    """Index of the first command starting with ``prefix`` (helm matched by basename)."""
    for index, cmd in enumerate(cmds):
        words = [Path(cmd[0]).name, *cmd[1:]]
        if words[: len(prefix)] == list(prefix):
            return index
    raise AssertionError(f"no command {' '.join(prefix)!r} in:\n" + "\n".join(map(shlex.join, cmds)))


@pytest.fixture(scope="module")
def up() -> list[list[str]]:
    done = run_kind("--dry-run", "up")
    assert done.returncode == 0, done.stderr
    return commands(done.stdout)


def test_dry_run_creates_the_cluster_from_the_kind_config(up: list[list[str]]) -> None:
    cmd = up[find(up, "kind", "create", "cluster")]
    assert cmd[cmd.index("--config") + 1] == "config/kind/cluster.yaml"
    assert cmd[cmd.index("--name") + 1] == "airflow-azblob"
    assert yaml.safe_load((ROOT / "config/kind/cluster.yaml").read_text())["name"] == "airflow-azblob"


def test_dry_run_builds_the_image_from_the_dockerfile_and_loads_it_into_kind(up: list[list[str]]) -> None:
    build = up[find(up, "docker", "build")]
    assert build[build.index("--tag") + 1] == "airflow-azblob:local"
    assert build[-1] == "."
    load = find(up, "kind", "load", "docker-image", "airflow-azblob:local", "--name", "airflow-azblob")
    assert find(up, "kind", "create", "cluster") < find(up, "docker", "build") < load


def test_dry_run_preloads_and_deploys_the_git_server_before_helm(up: list[list[str]]) -> None:
    image = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "config/kind/dags-git.yaml").read_text())
        if doc["kind"] == "Deployment"
    )["spec"]["template"]["spec"]["containers"][0]["image"]
    load = find(up, "kind", "load", "docker-image", image)
    applied = [word for cmd in up if Path(cmd[0]).name == "kubectl" and "apply" in cmd for word in cmd]
    assert "--filename=config/kind/dags-git.yaml" in applied
    assert "--filename=config/kind/namespace.yaml" in applied
    push = find(up, "push-dags")
    assert up[push][-1] == "git://127.0.0.1:19418/dags.git"
    subpath = yaml.safe_load((ROOT / "config/profiles/kind.yaml").read_text())["dags"]["gitSync"]["subPath"]
    assert up[push][up[push].index("--subdir") + 1] == subpath  # where the kind profile looks for DAGs
    forward = up[push - 1]
    assert forward[-3:] == ["port-forward", "svc/dags-git", "19418:9418"]
    assert load < push < find(up, "helm", "upgrade")


def test_dry_run_installs_the_chart_with_the_kind_profile_and_waits(up: list[list[str]]) -> None:
    helm = up[find(up, "helm", "upgrade")]
    assert helm[1:5] == ["upgrade", "--install", "airflow", "chart/"]
    assert [word for word in helm if word.startswith("--values")] == ["--values=config/profiles/kind.yaml"]
    assert helm[helm.index("--namespace") + 1] == "airflow"
    assert helm[helm.index("--kube-context") + 1] == "kind-airflow-azblob"
    assert "--wait" in helm
    assert "--create-namespace" in helm


def test_dry_run_runs_helm_test_after_the_install(up: list[list[str]]) -> None:
    test = find(up, "helm", "test", "airflow")
    assert test > find(up, "helm", "upgrade")
    assert "--logs" in up[test]


def test_every_kubectl_and_helm_command_targets_the_kind_context(up: list[list[str]]) -> None:
    for cmd in up:
        if Path(cmd[0]).name == "kubectl":
            assert cmd[1:3] == ["--context", "kind-airflow-azblob"], cmd
        if Path(cmd[0]).name == "helm":
            assert "kind-airflow-azblob" in cmd, cmd


def test_dry_run_down_deletes_the_cluster() -> None:
    done = run_kind("--dry-run", "down")
    assert done.returncode == 0, done.stderr
    assert commands(done.stdout) == [[installed_kind(), "delete", "cluster", "--name", "airflow-azblob"]]


def installed_kind(path: str | None = None) -> str:
    """The kind scripts/kind runs: the one on PATH, else the one `make install` built into .tools/bin."""
    return "kind" if shutil.which("kind", path=path) else ".tools/bin/kind"


def test_without_kind_on_path_the_pinned_kind_of_make_install_runs(tmp_path: Path) -> None:
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "kind").exists())
    done = run_kind("--dry-run", "down", env={**os.environ, "PATH": path})
    assert done.returncode == 0, done.stderr
    assert commands(done.stdout)[0][0] == ".tools/bin/kind"
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert re.search(r'^KIND_VERSION="v0\.30\.0"$', bootstrap, re.MULTILINE), "kind pinned where the node image says"
    done = run_kind("--dry-run", "down", env={**os.environ, "PATH": path, "KIND": str(tmp_path / "my-kind")})
    assert commands(done.stdout)[0][0] == str(tmp_path / "my-kind")


def test_standins_boot_the_kind_node_stand_in_and_load_every_image_of_the_release() -> None:
    done = run_kind("--dry-run", "up", env={**os.environ, "STANDINS": "1"})
    assert done.returncode == 0, done.stderr
    cmds = commands(done.stdout)
    build = find(cmds, "images", "build")
    create = cmds[find(cmds, "kind", "create", "cluster")]
    assert build < cmds.index(create), "the node image is built before the cluster boots on it"
    assert create[create.index("--image") + 1] == standins()["kind-node"].image
    load = cmds[find(cmds, "kind", "load", "docker-image")]
    assert "<images of the release>" in load
    assert "standin/git:bookworm" in load
    helm = cmds[find(cmds, "helm", "upgrade")]
    assert "--values=scripts/localcluster/values.yaml" in helm
    assert not [cmd for cmd in cmds if cmd[:2] in (["docker", "build"], ["docker", "pull"])]


def test_dry_run_smoke_gets_a_jwt_then_triggers_the_dataframe_dag() -> None:
    done = run_kind("--dry-run", "smoke")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    requests = [line.split()[1:3] for line in lines if line.split()[1] in ("GET", "POST", "PATCH")]
    assert requests[0] == ["POST", "http://127.0.0.1:8080/auth/token"]
    assert ["PATCH", "http://127.0.0.1:8080/api/v2/dags/example_dataframe_pipeline"] in requests
    assert ["POST", "http://127.0.0.1:8080/api/v2/dags/example_dataframe_pipeline/dagRuns"] in requests
    forwards = [cmd for cmd in commands(done.stdout) if "port-forward" in cmd]
    assert [cmd[-1] for cmd in forwards] == ["8080:8080", "10000:10000"]


def test_help_and_bad_arguments() -> None:
    done = run_kind("--help")
    assert done.returncode == 0
    assert "--dry-run" in done.stdout
    done = run_kind("launch")
    assert done.returncode != 0
    assert "unknown argument 'launch'" in done.stderr


def test_missing_prerequisites_stop_before_anything_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin", "HELM": str(tmp_path / "no-helm"), "KIND": str(tmp_path / "no-kind")}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "kind").exists())
    done = run_kind("up", env=env)
    assert done.returncode != 0
    assert "kind: not found; install kind" in done.stderr
    assert "helm: not found" in done.stderr
    assert "missing prerequisites" in done.stderr
    assert "creating kind cluster" not in done.stdout


# --- stand-in tools ------------------------------------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
set -euo pipefail
echo "$(basename "$0") $*" >> "$STATE/calls"
{body}
"""

STUBS = {
    "docker": """case "$1" in
  info) if [[ "$*" == *ServerVersion* ]]; then echo 28.0.0; fi ;;
  version) echo 28.0.0 ;;
  image) echo "sha256:$(cat "$STATE/image-id" 2>/dev/null || echo none)"; [[ -f "$STATE/image-id" ]] ;;
  build) date +%s%N > "$STATE/image-id" ;;
esac""",
    "kind": """case "$1 ${2:-}" in
  "version ") echo "kind v0.30.0" ;;
  "get clusters") cat "$STATE/clusters" 2>/dev/null || true ;;
  "create cluster") echo airflow-azblob >> "$STATE/clusters" ;;
  "delete cluster") rm -f "$STATE/clusters" ;;
esac""",
    # port-forward of svc/dags-git: serve the repos with the daemon command of config/kind/dags-git.yaml.
    "kubectl": """args=("$@")
if [[ " $* " == *" port-forward svc/dags-git "* ]]; then
  port="${args[-1]%%:*}"
  exec $DAEMON_COMMAND --port="$port"
fi
if [[ " $* " == *" version "* ]]; then echo "Client Version: v1.34.0"; fi
if [[ " $* " == *" rollout status "* && -n "${ROLLOUT_FAILS:-}" ]]; then
  echo "error: timed out waiting for the condition" >&2; exit 1
fi
if [[ " $* " == *" get pods "* ]]; then echo "dags-git-5d8f   0/1   Pending"; fi
if [[ " $* " == *" get nodes "* ]]; then echo "airflow-azblob-control-plane: Ready DiskPressure"; fi""",
    "helm": """case "$1" in
  version) echo v3.19.5 ;;
  status) [[ -f "$STATE/release" ]] ;;
  upgrade) touch "$STATE/release" ;;
esac""",
}


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    """PATH with logging stand-ins for docker/kind/kubectl/helm; the Git server a real local git daemon."""
    bin_dir, state, repos = tmp_path / "bin", tmp_path / "state", tmp_path / "srv-git"
    for folder in (bin_dir, state, repos):
        folder.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(STUB.format(body=body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    deployment = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "config/kind/dags-git.yaml").read_text())
        if doc["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    init = pod["initContainers"][0]["command"]
    subprocess.run([*init[:2], init[2].replace("/srv/git", str(repos))], check=True)  # the init container's script
    daemon = [w.replace("/srv/git", str(repos)) for w in pod["containers"][0]["command"] if not w.startswith("--port")]
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HELM": str(bin_dir / "helm"),
        "KUBECTL": str(bin_dir / "kubectl"),
        "STATE": str(state),
        "DAEMON_COMMAND": shlex.join(daemon),
        "GIT_PORT": str(free_port()),
        "AIRFLOW_PASSWORD": "stand-in",
        "REPOS": str(repos),
    }


def calls(env: dict[str, str]) -> list[str]:
    return (Path(env["STATE"]) / "calls").read_text().splitlines()


def test_up_with_stand_in_tools_pushes_dags_through_the_git_daemon_and_is_idempotent(
    stand_ins: dict[str, str],
) -> None:
    if not any((ROOT / "dags").glob("*.py")):
        pytest.skip("dags/ has no DAG files yet")
    first = run_kind("up", env=stand_ins)
    assert first.returncode == 0, first.stdout + first.stderr
    log = calls(stand_ins)
    assert "kind create cluster --name airflow-azblob --config config/kind/cluster.yaml --wait 120s" in log
    assert any(line.startswith("helm upgrade --install airflow chart/") for line in log)
    assert any(line.startswith("helm test airflow") for line in log)
    repo = Path(stand_ins["REPOS"]) / "dags.git"
    files = subprocess.run(
        ["git", "--git-dir", repo, "ls-tree", "-r", "--name-only", "main"], capture_output=True, text=True, check=True
    ).stdout.split()
    dags = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "dags").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert files == dags

    (Path(stand_ins["STATE"]) / "calls").unlink()
    second = run_kind("up", env=stand_ins)
    assert second.returncode == 0, second.stdout + second.stderr
    log = calls(stand_ins)
    assert not [line for line in log if line.startswith("kind create cluster")], "the cluster was created twice"
    assert "cluster 'airflow-azblob' exists" in second.stdout
    assert "already has these DAGs: nothing to push" in second.stdout
    assert "image changed: restarting the Airflow deployments" in second.stdout  # the stand-in build changes the id
    commits = subprocess.run(
        ["git", "--git-dir", repo, "rev-list", "--count", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert commits == "1"


def test_a_git_server_that_never_gets_ready_fails_up_with_what_the_cluster_reports(stand_ins: dict[str, str]) -> None:
    done = run_kind("up", env={**stand_ins, "ROLLOUT_FAILS": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "deploy: the dev Git server was not ready within 180 s" in done.stderr
    for reported in ("dags-git-5d8f   0/1   Pending", "airflow-azblob-control-plane: Ready DiskPressure"):
        assert reported in done.stderr
    log = calls(stand_ins)
    assert any(" get events --field-selector type=Warning" in line for line in log)
    assert not any(line.startswith("helm upgrade") for line in log), "helm ran after the Git server failed"


# --- the manifests ---------------------------------------------------------------------------------------------------


def test_kind_manifests_are_valid_kubernetes_for_the_node_version() -> None:
    version = yaml.safe_load((ROOT / "config/kind/cluster.yaml").read_text())["nodes"][0]["image"]
    version = version.split(":v", 1)[1].split("@", 1)[0]
    files = [ROOT / "config/kind/namespace.yaml", ROOT / "config/kind/dags-git.yaml"]
    cmd = [ROOT / ".venv/bin/kubernetes-validate", "--strict", "--quiet", "-k", version, *files]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kind_node_and_git_server_images_are_pinned() -> None:
    node = yaml.safe_load((ROOT / "config/kind/cluster.yaml").read_text())["nodes"][0]["image"]
    assert "@sha256:" in node
    pod = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "config/kind/dags-git.yaml").read_text())
        if doc["kind"] == "Deployment"
    )["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert len(images) == 1, "init and server containers share one (preloaded) image"
    image = images.pop()
    assert image.rsplit(":", 1)[-1] not in ("latest", ""), image
    assert all(c["imagePullPolicy"] == "IfNotPresent" for c in pod["initContainers"] + pod["containers"])


def test_the_kind_profiles_step_namespace_is_created_restricted_apart_from_the_release() -> None:
    steps = yaml.safe_load((ROOT / "config/profiles/kind.yaml").read_text())["workers"]["podOperator"]["namespace"]
    namespaces = {
        doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((ROOT / "config/kind/namespace.yaml").read_text())
    }
    assert steps in namespaces
    assert steps != "airflow"  # the release namespace scripts/deploy installs into
    assert namespaces[steps]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
