"""The local cluster from a test's side: kubectl and helm against its kubeconfig, port-forwards, and a snapshot of
what a cluster adds to this machine (processes, mounts, network interfaces and addresses, iptables rules, cgroups),
so a test can prove that `make cluster-down` takes all of it away again.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.devstack.services import free_port
from scripts.localcluster.cluster import CONTEXT, PATHS, RUN_DIR
from scripts.paths import CLUSTER_BIN, CLUSTER_SCRIPT, LOCAL_CLUSTER_PROFILES, ROOT
from tests.support.helm import helm_binary

NAMESPACE = "airflow"
RELEASE = "airflow"
PROFILES = LOCAL_CLUSTER_PROFILES


def cluster_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """scripts/localcluster/cluster (the `make cluster-*` entry point), failing with its output when it fails."""
    done = subprocess.run([str(CLUSTER_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"scripts/localcluster/cluster {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@dataclass
class LocalCluster:
    kubeconfig: Path = PATHS.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        import os

        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECTL": str(CLUSTER_BIN / "kubectl")}

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        argv = [str(CLUSTER_BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "--output=json").stdout)

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        argv = [str(helm_binary()), "--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
        if done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr}")
        return done

    def deploy(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 1500
    ) -> subprocess.CompletedProcess:
        """scripts/deploy (the `make deploy` entry point) against this cluster."""
        argv = [str(ROOT / "scripts" / "deploy"), "--context", CONTEXT, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env or self.env)

    @contextmanager
    def follow_logs(self, pod: str, into: Path) -> Iterator[Callable[[float], str]]:
        """``kubectl logs --follow`` of the pod's main container into a file, from now until the container ends;
        yields ``ended(timeout) -> output``, which waits (bounded) for that end."""
        argv = [str(CLUSTER_BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE]
        with into.open("wb") as sink:
            process = subprocess.Popen([*argv, "logs", "--follow", f"pod/{pod}"], stdout=sink, stderr=sink)

        def ended(timeout: float) -> str:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"pod {pod} still ran {timeout:.0f} s later") from None
            return into.read_text(errors="replace")

        try:
            yield ended
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)

    def routed_addresses(self, service: str) -> set[str]:
        """The pod addresses this node's kube-proxy sends the Service's ClusterIP to right now: the data plane, which
        follows the EndpointSlices with a lag (seconds on a loaded machine). Reads its rules, so it holds for the
        local cluster's kube-proxy mode, iptables (scripts/localcluster/config/kube-proxy.yaml)."""
        target = re.compile(rf'--comment "{NAMESPACE}/{re.escape(service)}:[^" ]* -> ([0-9.]+):\d+"')
        return {m[1] for line in _run("iptables-save", "-t", "nat").splitlines() if (m := target.search(line))}

    @contextmanager
    def port_forward(self, service: str, port: int, local: int | None = None) -> Iterator[int]:
        """``kubectl port-forward svc/<service>`` on ``local`` (default: a free port); yields that port once it
        accepts."""
        local = local or free_port()
        argv = [str(CLUSTER_BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE]
        process = subprocess.Popen(
            [*argv, "port-forward", f"svc/{service}", f"{local}:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", local)) == 0:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"port-forward to svc/{service}:{port} failed: {process.stderr.read()}")
                time.sleep(0.1)
            yield local
        finally:
            process.terminate()
            process.wait(timeout=10)


def script_service(
    name: str, image: str, script: Path, port: int, *, env: list[dict[str, Any]] = (), writable: str | None = None
) -> list[dict[str, Any]]:
    """Manifests of a helper server for a test: ``script`` in a ConfigMap, run by ``image``'s Python with ``port`` as
    its argument in a Pod that meets the restricted Pod Security level (read-only root; ``writable``: an emptyDir
    mounted there, HOME too), behind a Service ``name``:``port``. Ready once it listens."""
    labels = {"app.kubernetes.io/name": name}
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    mounts = [{"name": "script", "mountPath": "/script"}]
    volumes = [{"name": "script", "configMap": {"name": name}}]
    if writable:
        mounts.append({"name": "writable", "mountPath": writable})
        volumes.append({"name": "writable", "emptyDir": {}})
        env = [*env, {"name": "HOME", "value": writable}]
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", f"/script/{script.name}", str(port)],
        "env": list(env),
        "ports": [{"containerPort": port}],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
        "securityContext": restricted,
        "volumeMounts": mounts,
    }
    pod_security = {"runAsNonRoot": True, "runAsUser": 50000, "seccompProfile": {"type": "RuntimeDefault"}}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {script.name: script.read_text()},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"securityContext": pod_security, "containers": [container], "volumes": volumes},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
        },
    ]


# ------------------------------------------------------------------------------------- what a cluster adds


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


COUNTERS = re.compile(r" \[\d+:\d+\]$")
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
BUILT_IN_ACCEPT = re.compile(r"^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT( \[\d+:\d+\])?$")


def _iptables_rules() -> set[str]:
    """The rules, chains of their own and changed policies of every table. Not a table's header nor a built-in chain
    still on ACCEPT: the kernel creates those when a table is first used (a fresh machine's first cluster touches
    ip6tables for the first time) and keeps them, empty, for good."""
    rules = set()
    for tool in ("iptables-save", "ip6tables-save"):
        for line in _run(tool).splitlines():
            if line.startswith(("#", "COMMIT", "*")) or BUILT_IN_ACCEPT.match(line):
                continue
            rules.add(f"{tool} {COUNTERS.sub('', line)}")
    return rules


def _nftables_tables() -> set[str]:
    """nftables tables other than iptables-nft's own (those, like the built-in chains, stay once used): the
    NetworkPolicy enforcer's."""
    if not shutil.which("nft"):
        return set()
    tables = {line.removeprefix("table ") for line in _run("nft", "list", "tables").splitlines()}
    return {table for table in tables if table.split()[-1] not in IPTABLES_TABLES}


def cluster_processes() -> set[str]:
    """Running (not zombie) processes of the cluster: its binaries, its state directory, its containerd's shims.

    Zombies do not count: this VM's PID 1 does not reap orphans, so a stopped daemon may linger as <defunct>.
    """
    markers = (str(PATHS.state), str(RUN_DIR), str(CLUSTER_BIN))
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if state != "Z" and any(marker in cmdline for marker in markers):
            found.add(f"{proc.name} {cmdline[:200]}")
    return found


def machine_state() -> dict[str, set[str]]:
    return {
        "processes": cluster_processes(),
        "mounts": {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()},
        "interfaces": {path.name for path in Path("/sys/class/net").iterdir()},
        "addresses": {" ".join(line.split()[1:4]) for line in _run("ip", "-o", "addr").splitlines()},
        "iptables": _iptables_rules(),
        "nftables": _nftables_tables(),
        "cgroups": {str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")},
    }


def leftovers(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
    """What ``after`` has that ``before`` had not (the cluster's processes count whatever ``before`` held)."""
    found = {key: sorted(after[key] - before[key]) for key in after if key != "processes"}
    found["processes"] = sorted(after["processes"])
    return {key: value for key, value in found.items() if value}
