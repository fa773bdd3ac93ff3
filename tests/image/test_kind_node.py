"""The kind node stand-in (scripts/localcluster/kind_node.py) holds what kind v0.30 expects of a node image: the files
kind reads and writes, kind's entrypoint and stop signal, the Kubernetes binaries at the version /kind/version names,
a containerd configured as kind configures it, and every image the node starts already in that containerd, so that
nothing is pulled. Each expectation is read from kind's own source or the node's own files, not from the builder.
tests/kind boots it.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from scripts.localcluster.images import standins
from scripts.localcluster.kind_node import fully_qualified, kind_source, kind_version
from tests.support.containers import docker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(built_images: dict[str, float]) -> str:
    return standins()["kind-node"].image


def run(node: str, script: str, *flags: str) -> str:
    done = docker("run", "--rm", *flags, "--entrypoint", "bash", node, "-c", script, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kind_starts_it_with_its_own_entrypoint_and_stops_it_with_systemds_signal(node: str) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", node).stdout)
    assert config["Entrypoint"] == ["/usr/local/bin/entrypoint", "/sbin/init"]
    assert config["StopSignal"] == "SIGRTMIN+3"
    assert "container=docker" in config["Env"]
    entrypoint = (kind_source(kind_version()) / "images/base/files/usr/local/bin/entrypoint").read_text()
    assert run(node, "cat /usr/local/bin/entrypoint") == entrypoint


def test_kind_version_names_the_kubernetes_binaries_inside(node: str) -> None:
    version = run(node, "cat /kind/version").strip()
    assert version == node.rsplit(":", 1)[1]
    said = run(node, "kubeadm version -o short; kubelet --version; kubectl version --client | head -n1")
    assert said.split() == [version, "Kubernetes", version, "Client", "Version:", version]


def test_containerd_is_configured_as_kind_configures_it(node: str) -> None:
    config = run(node, "cat /etc/containerd/config.toml")
    assert re.search(r"^\s*SystemdCgroup = true", config, re.MULTILINE)
    assert re.search(r'^\s*snapshotter = "overlayfs"', config, re.MULTILINE)
    # The stand-in's one change, for a root without CAP_SYS_RESOURCE (standins/kind-node/Dockerfile).
    assert re.search(r"^\s*restrict_oom_score_adj = true", config, re.MULTILINE)
    enabled = run(node, "systemctl is-enabled containerd kubelet undo-mount-hacks").split()
    assert enabled == ["enabled", "enabled", "enabled"]
    units = run(node, "ls /etc/systemd/system/kubelet.service.d").split()
    assert units == ["10-kubeadm.conf", "11-kind.conf"]
    assert run(node, "ls /opt/cni/bin").split() == ["host-local", "loopback", "portmap", "ptp"]


def test_every_image_the_node_starts_is_in_its_containerd(node: str) -> None:
    """kubeadm's images (but pause, which kind swaps for containerd's sandbox image), the sandbox image, and every
    image of kind's CNI and storage manifests, in the node's containerd (namespace k8s.io): kind pulls nothing."""
    script = """
    containerd >/dev/null 2>&1 &
    for ((i = 0; i < 100; i++)); do [[ -S /run/containerd/containerd.sock ]] && break; sleep 0.1; done
    echo '---images'; ctr --namespace k8s.io images list --quiet
    echo '---kubeadm'; kubeadm config images list --kubernetes-version "$(cat /kind/version)"
    echo '---sandbox'; sed -n 's/^ *sandbox_image = "\\(.*\\)"/\\1/p' /etc/containerd/config.toml
    echo '---manifests'; cat /kind/manifests/default-cni.yaml; echo '---'; cat /kind/manifests/default-storage.yaml
    """
    sections = dict(part.split("\n", 1) for part in run(node, script, "--privileged").split("---")[1:] if part)
    present = set(sections["images"].split())
    wanted = {image for image in sections["kubeadm"].split() if "/pause:" not in image}
    wanted |= set(sections["sandbox"].split())
    for document in yaml.safe_load_all(sections["manifests"].replace("{{ .PodSubnet }}", "10.244.0.0/16")):
        text = yaml.safe_dump(document or {})
        wanted |= set(re.findall(r"image: (\S+)", text)) | set(re.findall(r"- (docker\.io/kindest/\S+)", text))
    assert {fully_qualified(image) for image in wanted} <= present


def test_etcd_and_coredns_are_the_versions_kubeadm_asks_for(node: str) -> None:
    asked = run(node, 'kubeadm config images list --kubernetes-version "$(cat /kind/version)"').split()
    etcd = next(image for image in asked if "/etcd:" in image)  # registry.k8s.io/etcd:3.6.5-0
    coredns = next(image for image in asked if "/coredns:" in image)  # registry.k8s.io/coredns/coredns:v1.12.1
    assert (
        f"etcd Version: {etcd.rsplit(':', 1)[1].split('-')[0]}\n"
        in docker("run", "--rm", etcd, "etcd", "--version").stdout
    )
    assert f"CoreDNS-{coredns.rsplit(':v', 1)[1]}\n" in docker("run", "--rm", coredns, "-version").stdout
