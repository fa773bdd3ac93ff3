"""`make kind-up`, `make kind-smoke`, `make kind-ui` and `make kind-down`, for real: a kind cluster on this machine's
Docker engine, booted from the kind node stand-in (scripts/localcluster/kind_node.py), with the images `kind load`ed.

What this proves is kind's own part of the path: config/kind/cluster.yaml, kind's containerd and `kind load`, kindnet
as the CNI, kind's local-path storage class under the PostgreSQL volume, the port-forwarded UI, and a delete that
leaves nothing. The chart's behaviour is the cluster suite's (tests/cluster, on the local cluster). STANDINS=1 runs
it without a registry: stand-ins instead of the official images, as on the local cluster.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.devstack.services import free_port
from scripts.localcluster import runc_bounded
from scripts.localcluster.images import APP_IMAGE, BOUNDED_RUNTIME, docker, standins
from scripts.localcluster.kind_node import fully_qualified
from scripts.paths import CLUSTER_BIN, ROOT

pytestmark = pytest.mark.slow
CLUSTER = yaml.safe_load((ROOT / "config" / "kind" / "cluster.yaml").read_text())["name"]
CONTEXT = f"kind-{CLUSTER}"
NODE = f"{CLUSTER}-control-plane"
KIND_LABEL = f"label=io.x-k8s.kind.cluster={CLUSTER}"


def make(target: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    argv = ["make", "--no-print-directory", target]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    return done


def kind_containers() -> list[str]:
    return docker("ps", "--all", "--quiet", "--filter", KIND_LABEL).stdout.split()


def volumes() -> set[str]:
    return set(docker("volume", "ls", "--quiet").stdout.split())


def require_privileged_containers() -> None:
    """kind's nodes are privileged: where root lacks a capability, only a dockerd with runc_bounded.py runs them."""
    if not runc_bounded.missing(runc_bounded.bounding_set()):
        return
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    default = docker("info", "--format", "{{.DefaultRuntime}}").stdout.strip()
    if default != BOUNDED_RUNTIME or BOUNDED_RUNTIME not in runtimes:
        pytest.fail(
            f"this machine's root lacks {', '.join(runc_bounded.missing(runc_bounded.bounding_set()))}, and the "
            f"running dockerd has no {BOUNDED_RUNTIME} default runtime, so no kind node can start: stop that dockerd "
            "and let the tests start their own (scripts/localcluster/images docker-start)"
        )


@pytest.fixture(scope="module")
def volumes_before(built_images: dict[str, float]) -> set[str]:
    return volumes()


@pytest.fixture(scope="module")
def env(volumes_before: set[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of the `make kind-*` calls: stand-ins, and a kubeconfig of this module's own."""
    require_privileged_containers()
    if kind_containers():
        pytest.fail(f"a kind cluster {CLUSTER!r} already runs here: `make kind-down` it first")
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    network_existed = docker("network", "inspect", "kind", check=False).returncode == 0
    environment = {**os.environ, "STANDINS": "1", "KUBECONFIG": str(kubeconfig)}
    environment.pop("KIND_NODE_IMAGE", None)
    yield environment
    if kind_containers():  # a test failed before kind-down: delete the cluster all the same
        subprocess.run(["make", "kind-down"], cwd=ROOT, env=environment, capture_output=True, timeout=300, check=False)
    if not network_existed:  # kind keeps its Docker network after the last cluster; this module made it
        docker("network", "rm", "kind", check=False)


@pytest.fixture(scope="module")
def up(env: dict[str, str]) -> subprocess.CompletedProcess:
    return make("kind-up", env)


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    argv = [str(CLUSTER_BIN / "kubectl"), "--context", CONTEXT, *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


def get(env: dict[str, str], *args: str) -> dict:
    return json.loads(kubectl(env, "get", *args, "--output=json").stdout)


def test_kind_up_boots_the_node_stand_in_from_the_kind_config_and_passes_helm_test(
    up: subprocess.CompletedProcess, env: dict[str, str]
) -> None:
    assert f"creating kind cluster '{CLUSTER}' from config/kind/cluster.yaml" in up.stdout
    assert "XCom round trip through include.azblob_xcom_backend.WasbXComBackend: ok" in up.stdout
    image = docker("inspect", "--format", "{{.Config.Image}}", NODE).stdout.strip()
    assert image == standins()["kind-node"].image
    (node,) = get(env, "nodes")["items"]
    assert node["metadata"]["name"] == NODE
    assert node["status"]["nodeInfo"]["kubeletVersion"] == image.rsplit(":", 1)[1]
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert yaml.safe_load(Path(env["KUBECONFIG"]).read_text())["current-context"] == CONTEXT


def test_the_release_runs_the_images_kind_load_put_in_the_nodes_containerd(up, env) -> None:
    listed = docker("exec", NODE, "crictl", "images", "--output=json").stdout
    in_node = {tag for image in json.loads(listed)["images"] for tag in image["repoTags"]}
    pods = get(env, "pods", "--namespace", "airflow")["items"]
    running = {c["image"] for pod in pods for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])}
    assert fully_qualified(APP_IMAGE) in in_node
    assert {fully_qualified(image) for image in running} <= in_node, "every image the release runs was kind-loaded"


def test_pods_are_networked_by_kindnet_and_volumes_are_kinds_local_path_storage(up, env) -> None:
    kindnet = get(env, "daemonset", "kindnet", "--namespace", "kube-system")
    assert kindnet["status"]["numberReady"] == 1
    conflist = docker("exec", NODE, "cat", "/etc/cni/net.d/10-kindnet.conflist").stdout
    assert json.loads(conflist)["name"] == "kindnet"
    networking = yaml.safe_load((ROOT / "config" / "kind" / "cluster.yaml").read_text()).get("networking", {})
    subnet = ipaddress.ip_network(networking.get("podSubnet", "10.244.0.0/16"))  # kind's default
    pods = [pod for pod in get(env, "pods", "--namespace", "airflow")["items"] if not pod["spec"].get("hostNetwork")]
    assert pods
    outside = [pod["metadata"]["name"] for pod in pods if ipaddress.ip_address(pod["status"]["podIP"]) not in subnet]
    assert not outside, f"pods outside kindnet's {subnet}"

    claims = get(env, "pvc", "--namespace", "airflow")["items"]
    assert any(claim["metadata"]["labels"].get("app.kubernetes.io/component") == "postgresql" for claim in claims)
    for claim in claims:  # PostgreSQL's and Azurite's
        assert claim["status"]["phase"] == "Bound", claim["metadata"]["name"]
        storage_class = get(env, "storageclass", claim["spec"]["storageClassName"])
        assert storage_class["provisioner"] == "rancher.io/local-path"
        assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        path = get(env, "pv", claim["spec"]["volumeName"])["spec"]["hostPath"]["path"]
        assert docker("exec", NODE, "test", "-d", path, check=False).returncode == 0, f"{path} is not on the node"


def test_kind_smoke_runs_the_dataframe_pipeline(up, env) -> None:
    done = make("kind-smoke", env, timeout=600)
    assert "smoke test passed: example_dataframe_pipeline run" in done.stdout


def test_kind_ui_serves_the_api_server_on_localhost_until_stopped(up, env) -> None:
    port = free_port()
    ui = subprocess.Popen(
        ["make", "--no-print-directory", "kind-ui"], cwd=ROOT, env=env | {"UI_PORT": str(port)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        health, deadline = None, time.monotonic() + 60
        while health is None and time.monotonic() < deadline:
            assert ui.poll() is None, f"make kind-ui exited: {ui.stdout.read()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
                    health = json.load(response)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert health is not None, f"nothing answered on 127.0.0.1:{port} within 60 s"
        assert health["metadatabase"]["status"] == "healthy"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert "<html" in response.read().decode().lower()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        output = ui.communicate(timeout=30)[0]
    assert "Login: user admin / password " in output


def test_kind_down_deletes_the_cluster_and_leaves_nothing_behind(up, env, volumes_before: set[str]) -> None:
    make("kind-down", env, timeout=300)
    assert kind_containers() == []
    assert volumes() <= volumes_before, "the node's volume outlived it"
    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text()) or {}
    assert CONTEXT not in [context["name"] for context in kubeconfig.get("contexts") or []]
    again = make("kind-down", env, timeout=120)
    assert f"no cluster '{CLUSTER}': nothing to delete" in again.stdout
