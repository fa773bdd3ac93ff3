"""`make cluster-up` / `cluster-status` / `cluster-down` on a bare cluster (nothing deployed): idempotent, the pinned
Kubernetes release, claims bound by the hostPath provisioner, and nothing left on the machine afterwards.

This module runs before the folder's shared cluster is created (tests/cluster/conftest.py), so it owns the machine.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable

import pytest

from scripts.localcluster.cluster import NODE_NAME, PATHS
from scripts.paths import CLUSTER_SCRIPT, KUBERNETES_MODULE
from tests.support.cluster import LocalCluster, cluster_script, leftovers, machine_state

pytestmark = pytest.mark.slow

CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: lifecycle
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""


def pinned_kubernetes() -> str:
    go_mod = (KUBERNETES_MODULE / "go.mod").read_text()
    return re.search(r"k8s\.io/kubernetes (v[\d.]+)", go_mod)[1]


def wait(what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.2)


def test_up_status_and_down_are_idempotent_and_down_leaves_nothing_behind(built_images: dict[str, float]) -> None:
    before = machine_state()
    first = cluster_script("up")
    assert f"KUBECONFIG={PATHS.kubeconfig}" in first.stdout
    assert "already running" in cluster_script("up").stdout
    status = cluster_script("status").stdout
    assert f"node {NODE_NAME}: Ready" in status
    assert "stopped" not in status

    cluster = LocalCluster()
    node = cluster.get("node", NODE_NAME)
    assert node["status"]["nodeInfo"]["kubeletVersion"] == pinned_kubernetes()

    # A claim of the default StorageClass gets a writable directory of its own, which goes with the claim.
    cluster.kubectl("apply", "--namespace", "default", "--filename", "-", input=CLAIM)

    def claim() -> dict:
        return cluster.get("pvc", "lifecycle", "--namespace", "default")

    wait("the claim bound", lambda: claim()["status"].get("phase") == "Bound")
    volume = cluster.get("pv", claim()["spec"]["volumeName"])
    path = volume["spec"]["hostPath"]["path"]
    assert path.startswith(str(PATHS.state / "volumes"))
    cluster.kubectl("delete", "pvc", "lifecycle", "--namespace", "default")
    wait("the volume's directory removed", lambda: not (PATHS.state / "volumes" / path.rsplit("/", 1)[1]).exists())

    cluster_script("down")
    assert "no local cluster is running" in cluster_script("down").stdout
    assert not leftovers(before, machine_state())
    assert subprocess.run([CLUSTER_SCRIPT, "status"], capture_output=True, check=False).returncode == 1


def test_up_refuses_to_run_without_root_and_points_to_kind() -> None:
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLUSTER_SCRIPT, "up"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "needs root on Debian" in done.stderr
    assert "make kind-up" in done.stderr
