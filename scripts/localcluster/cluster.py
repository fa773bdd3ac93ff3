"""A real single-node Kubernetes on this machine, run as plain processes: `make cluster-up` / `cluster-down` /
`cluster-status` (scripts/localcluster/cluster, from the checkout's root):

    cluster up            start etcd, containerd, the control plane, a kubelet, kube-proxy, a NetworkPolicy enforcer,
                          CoreDNS and a hostPath provisioner; print the kubeconfig (.local/cluster/kubeconfig)
    cluster down [--purge]  stop everything and remove what it added to this machine (processes, mounts, the bridge,
                          the apiserver address, iptables rules, the enforcer's nftables table); --purge drops the
                          image cache
    cluster status        which processes run, the node's state
    cluster load-images IMAGE...   copy images from the Docker engine into the cluster's containerd

Why: kind's node images cannot be pulled where no registry is reachable, but the binaries build from the Go module
proxy (scripts/bootstrap cluster, pinned by config/kubernetes/go.mod of this folder) and Debian ships containerd, runc,
the CNI plugins and etcd. Everything after cluster creation (images, the chart, DAGs, helm test) is the same code
path as kind's (scripts/deploy). Needs root on Debian; elsewhere use `make kind-up`.

Addresses: the apiserver, kubelet and CoreDNS listen on NODE_IP, an address added to `lo` (a Service endpoint
cannot be a loopback address); pods get POD_CIDR on the bridge BRIDGE; Services get SERVICE_CIDR (kube-proxy,
iptables mode). NetworkPolicies hold: sigs.k8s.io/kube-network-policies (patched, scripts/bootstrap) queues each
new connection of a pod a policy selects to itself and accepts or drops it. State lives in .local/cluster (override:
CLUSTER_STATE_DIR); sockets in RUN_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.devstack.services import pid_alive
from scripts.localcluster import images
from scripts.localcluster.pki import Identity, Pki
from scripts.paths import CLUSTER_BIN, LOCAL_CLUSTER, ROOT

CONFIG = LOCAL_CLUSTER / "config"
STATE = Path(os.environ.get("CLUSTER_STATE_DIR", ROOT / ".local" / "cluster"))
RUN_DIR = Path("/run/airflow-azblob-cluster")
CONTEXT = "airflow-azblob-local"
NODE_NAME = "airflow-azblob-node"
NODE_IP = "10.200.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
APISERVER_PORT = 6443
ETCD_PORT = 12379
ETCD_PEER_PORT = 12380
BRIDGE = "azb0"
CNI_NETWORK = "airflow-azblob"
PAUSE_IMAGE = images.standins()["pause"].image
# The enforcer's nftables table (its default name; once there, it queues packets: its readiness here), and where it
# serves its metrics (this machine only).
NETWORK_POLICIES_TABLE = "kube-network-policies"
NETWORK_POLICIES_METRICS = "127.0.0.1:9080"
# Marks the iptables rules this script adds itself (CNI and kube-proxy mark theirs by chain name).
RULE_COMMENT = "airflow-azblob-local-cluster"
TOOLS = (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "coredns",
    "kube-network-policies",
)  # fmt: skip
CONTROL_PLANE = ("kube-controller-manager", "kube-scheduler", "provisioner")
# Start order; stopped in reverse.
PROCESSES = (
    "containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
    "network-policies", "coredns", "provisioner",
)  # fmt: skip


class ClusterError(Exception):
    """Something the user has to fix; the message says what."""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*argv: str | Path, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, check=check, input=input)


@dataclass(frozen=True)
class Paths:
    """Every file and directory of one cluster's state."""

    state: Path

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfigs(self) -> Path:
        return self.state / "kubeconfigs"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig users point KUBECONFIG at."""
        return self.state / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def etc(self) -> Path:
        return self.state / "etc"

    @property
    def containerd_root(self) -> Path:
        """containerd's content and snapshots: kept by `down` (the image cache), dropped by `down --purge`."""
        return self.state / "containerd"

    @property
    def loaded_images(self) -> Path:
        return self.containerd_root / "loaded-images.json"

    @property
    def pids(self) -> Path:
        return self.state / "pids.json"

    @property
    def saved_sysctls(self) -> Path:
        return self.state / "sysctls.json"


PATHS = Paths(STATE)
CONTAINERD_SOCKET = RUN_DIR / "containerd.sock"
CONTAINERD_STATE = RUN_DIR / "containerd"


def template_values() -> dict[str, str]:
    return {
        "containerd_root": str(PATHS.containerd_root),
        "containerd_state": str(CONTAINERD_STATE),
        "containerd_socket": str(CONTAINERD_SOCKET),
        "pause_image": f"docker.io/{PAUSE_IMAGE}",
        "cni_conf_dir": str(PATHS.etc / "cni"),
        "cni_state_dir": str(PATHS.state / "cni"),
        "cni_network": CNI_NETWORK,
        "bridge": BRIDGE,
        "pod_cidr": POD_CIDR,
        "node_ip": NODE_IP,
        "node_name": NODE_NAME,
        "pki": str(PATHS.pki),
        "kubeconfigs": str(PATHS.kubeconfigs),
    }


def render(template: str, target: Path) -> Path:
    """scripts/localcluster/config/<template> with its ${...} placeholders filled in, written to ``target``."""
    text = string.Template((CONFIG / template).read_text()).substitute(template_values())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


# ----------------------------------------------------------------------------------------------- prerequisites


def check_prerequisites() -> None:
    if sys.platform != "linux" or not Path("/etc/debian_version").exists() or os.geteuid() != 0:
        raise ClusterError(
            "the local cluster needs root on Debian (it runs containerd, a kubelet and iptables on this machine); "
            "elsewhere use `make kind-up`"
        )
    missing = [tool for tool in TOOLS if not (CLUSTER_BIN / tool).exists()]
    if missing:
        raise ClusterError(
            f"{', '.join(missing)} missing from {CLUSTER_BIN}: run `make install` (scripts/bootstrap cluster)"
        )
    for command in ("containerd", "runc", "etcd", "ctr", "iptables", "conntrack", "nft"):
        if not shutil.which(command):
            raise ClusterError(f"`{command}` is not installed: run `make install` (scripts/bootstrap cluster)")
    if not Path("/usr/lib/cni/bridge").exists():
        raise ClusterError("the CNI plugins are missing (/usr/lib/cni): run `make install` (scripts/bootstrap cluster)")
    if other := other_kubelet():
        raise ClusterError(
            f"another Kubernetes node runs on this machine ({other}): the local cluster would clash with it (and "
            "`cluster-down` removes every KUBE-*/CNI-* iptables chain and cni-* network namespace): stop it first"
        )


def other_kubelet() -> str | None:
    """The command line of a kubelet (or k3s/k0s) this script did not start, if one runs."""
    ours = set(read_pids().values())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in ours:
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = argv[0].decode(errors="replace")
        if Path(program).name in ("kubelet", "k3s", "k0s", "microk8s") and not program.startswith(str(CLUSTER_BIN)):
            return " ".join(a.decode(errors="replace") for a in argv if a)[:120]
    return None


# ------------------------------------------------------------------------------------------------- processes


def read_pids() -> dict[str, int]:
    try:
        return json.loads(PATHS.pids.read_text())
    except FileNotFoundError:
        return {}


def start(name: str, argv: list[str | Path]) -> None:
    PATHS.logs.mkdir(parents=True, exist_ok=True)
    with open(PATHS.logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            [str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=PATHS.state,
        )  # fmt: skip
    pids = read_pids()
    pids[name] = process.pid
    PATHS.pids.write_text(json.dumps(pids, indent=2))


def stop(name: str, *, timeout: float = 20) -> None:
    """SIGTERM the process group recorded for ``name``, SIGKILL what is left after ``timeout``."""
    pids = read_pids()
    pid = pids.pop(name, None)
    if pid is not None and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if PATHS.pids.exists():
        PATHS.pids.write_text(json.dumps(pids, indent=2))


def wait_for(what: str, condition: Callable[[], bool], *, timeout: float, process: str | None = None) -> None:
    """Poll ``condition`` until it is true; fail with the process log's tail when it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process and not pid_alive(read_pids().get(process, -1)):
            break
        time.sleep(0.2)
    hint = ""
    if process:
        log = PATHS.logs / f"{process}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        hint = f"\nlast lines of {log}:\n" + "\n".join(tail)
    raise ClusterError(f"{what} did not happen within {timeout:.0f} s{hint}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def apiserver_healthy() -> bool:
    if not (PATHS.pki / "admin.crt").exists():
        return False
    context = ssl.create_default_context(cafile=str(PATHS.pki / "ca.crt"))
    context.load_cert_chain(PATHS.pki / "admin.crt", PATHS.pki / "admin.key")
    try:
        with urllib.request.urlopen(f"https://{NODE_IP}:{APISERVER_PORT}/readyz", context=context, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def kubectl(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    return run(CLUSTER_BIN / "kubectl", "--kubeconfig", PATHS.kubeconfig, *args, check=check, input=input)


def ctr(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    return run("ctr", "--address", CONTAINERD_SOCKET, "--namespace", "k8s.io", *args, check=check, input=input)


# ------------------------------------------------------------------------------------------ machine settings


def set_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name.replace(".", "/")
    saved = json.loads(PATHS.saved_sysctls.read_text()) if PATHS.saved_sysctls.exists() else {}
    if name not in saved:
        saved[name] = path.read_text().strip()
        PATHS.saved_sysctls.write_text(json.dumps(saved))
    path.write_text(value)


def restore_sysctls() -> None:
    if not PATHS.saved_sysctls.exists():
        return
    for name, value in json.loads(PATHS.saved_sysctls.read_text()).items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name.replace(".", "/")).write_text(value)
    PATHS.saved_sysctls.unlink()


def node_address_present() -> bool:
    return f"inet {NODE_IP}/32" in run("ip", "-4", "addr", "show", "dev", "lo").stdout.decode()


def configure_network() -> None:
    """The node address on lo, IP forwarding, and FORWARD rules that let pod traffic past Docker's DROP policy."""
    if not node_address_present():
        run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
    set_sysctl("net.ipv4.ip_forward", "1")
    for direction in ("-s", "-d"):
        rule = ["FORWARD", direction, POD_CIDR, "-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT"]
        if run("iptables", "-C", *rule, check=False).returncode != 0:
            run("iptables", "-I", *rule)


# ---------------------------------------------------------------------------------------------------- up


def prepare_state() -> None:
    for directory in (PATHS.state, PATHS.logs, PATHS.etc, PATHS.kubeconfigs, PATHS.state / "volumes", RUN_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    owner = RUN_DIR / "owner"
    if owner.exists() and owner.read_text() != str(PATHS.state) and any(pid_alive(p) for p in read_pids().values()):
        raise ClusterError(f"another local cluster runs from {owner.read_text()}: stop it there (`make cluster-down`)")
    owner.write_text(str(PATHS.state))
    pki = Pki(PATHS.pki)
    pki.ensure_ca()
    pki.ensure_service_account_keys()
    service_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    for identity in (
        Identity("apiserver", "kube-apiserver", dns_names=(*service_names, "localhost"),
                 ip_addresses=(NODE_IP, KUBERNETES_SERVICE_IP, "127.0.0.1"), server=True, client=False),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", groups=("system:masters",)),
        Identity("admin", "kubernetes-admin", groups=("system:masters",)),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kubelet", f"system:node:{NODE_NAME}", groups=("system:nodes",)),
        Identity("kubelet-serving", NODE_NAME, dns_names=(NODE_NAME,), ip_addresses=(NODE_IP,), server=True,
                 client=False),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("coredns", "local-cluster:coredns"),
        Identity("provisioner", "local-cluster:provisioner"),
        Identity("network-policies", "local-cluster:network-policies"),
    ):  # fmt: skip
        pki.issue(identity)
    server = f"https://{NODE_IP}:{APISERVER_PORT}"
    pki.kubeconfig(PATHS.kubeconfig, identity="admin", server=server, cluster=CONTEXT)
    helpers = ("controller-manager", "scheduler", "kubelet", "kube-proxy", "coredns", "provisioner", "network-policies")
    for name in helpers:
        pki.kubeconfig(PATHS.kubeconfigs / f"{name}.kubeconfig", identity=name, server=server, cluster=CONTEXT)
    render("containerd.toml", PATHS.etc / "containerd.toml")
    render("cni.conflist", PATHS.etc / "cni" / "10-airflow-azblob.conflist")
    render("kubelet.yaml", PATHS.etc / "kubelet.yaml")
    render("kube-proxy.yaml", PATHS.etc / "kube-proxy.yaml")
    render("Corefile", PATHS.etc / "Corefile")
    # The kubelet writes container logs to podLogsDir (a KubeletConfiguration field not worth a placeholder).
    with open(PATHS.etc / "kubelet.yaml", "a") as kubelet_config:
        kubelet_config.write(f"podLogsDir: {PATHS.state / 'pod-logs'}\n")


def start_containerd() -> None:
    start("containerd", ["containerd", "--config", PATHS.etc / "containerd.toml"])
    wait_for("containerd's socket", lambda: ctr("version", check=False).returncode == 0, timeout=30,
             process="containerd")  # fmt: skip


def start_control_plane() -> None:
    pki = PATHS.pki
    start("etcd", [
        "etcd", "--name", "local", "--data-dir", PATHS.state / "etcd",
        "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}", "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
        "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-cluster", f"local=http://127.0.0.1:{ETCD_PEER_PORT}",
    ])  # fmt: skip
    wait_for("etcd listening", lambda: port_open("127.0.0.1", ETCD_PORT), timeout=30, process="etcd")
    start("kube-apiserver", [
        CLUSTER_BIN / "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        f"--advertise-address={NODE_IP}", f"--bind-address={NODE_IP}", f"--secure-port={APISERVER_PORT}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--profiling=false",
    ])  # fmt: skip
    wait_for("the apiserver ready (/readyz)", apiserver_healthy, timeout=90, process="kube-apiserver")
    kubectl("apply", "--filename", str(CONFIG / "addons.yaml"))
    kubeconfigs = PATHS.kubeconfigs
    start("kube-controller-manager", [
        CLUSTER_BIN / "kube-controller-manager", f"--kubeconfig={kubeconfigs / 'controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={kubeconfigs / 'controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={kubeconfigs / 'controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
    ])  # fmt: skip
    start("kube-scheduler", [
        CLUSTER_BIN / "kube-scheduler", f"--kubeconfig={kubeconfigs / 'scheduler.kubeconfig'}",
        f"--authentication-kubeconfig={kubeconfigs / 'scheduler.kubeconfig'}",
        f"--authorization-kubeconfig={kubeconfigs / 'scheduler.kubeconfig'}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false",
    ])  # fmt: skip


def start_node() -> None:
    start("kubelet", [
        CLUSTER_BIN / "kubelet", f"--config={PATHS.etc / 'kubelet.yaml'}",
        f"--kubeconfig={PATHS.kubeconfigs / 'kubelet.kubeconfig'}", f"--root-dir={PATHS.state / 'kubelet'}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
    ])  # fmt: skip
    start("kube-proxy", [CLUSTER_BIN / "kube-proxy", f"--config={PATHS.etc / 'kube-proxy.yaml'}"])
    start("network-policies", [
        CLUSTER_BIN / "kube-network-policies", f"--kubeconfig={PATHS.kubeconfigs / 'network-policies.kubeconfig'}",
        f"--hostname-override={NODE_NAME}", f"--metrics-bind-address={NETWORK_POLICIES_METRICS}", "--disable-nri",
    ])  # fmt: skip
    start("coredns", [CLUSTER_BIN / "coredns", "-conf", PATHS.etc / "Corefile"])
    start("provisioner", [
        ROOT / ".venv" / "bin" / "python", LOCAL_CLUSTER / "provisioner.py",
        "--kubeconfig", PATHS.kubeconfigs / "provisioner.kubeconfig", "--root", PATHS.state / "volumes",
    ])  # fmt: skip
    wait_for("the node Ready", node_ready, timeout=120, process="kubelet")
    wait_for("CoreDNS on the node address", lambda: port_open(NODE_IP, 53), timeout=30, process="coredns")
    wait_for("the NetworkPolicy enforcer's rules", nftables_table_present, timeout=30, process="network-policies")
    wait_for(
        "the default ServiceAccount",
        lambda: kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=60,
        process="kube-controller-manager",
    )


def node_ready() -> bool:
    done = kubectl("get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                   check=False)  # fmt: skip
    return done.stdout.decode().strip() == "True"


def running() -> dict[str, bool]:
    pids = read_pids()
    return {name: pid_alive(pids[name]) if name in pids else False for name in PROCESSES}


def cmd_up() -> None:
    check_prerequisites()
    states = running()
    if all(states.values()) and apiserver_healthy() and node_ready():
        step(f"the local cluster is already running (KUBECONFIG={PATHS.kubeconfig})")
        return
    if any(states.values()):
        step("a previous start was left half-way: stopping it first")
    teardown(purge=False, quiet=True)
    started = time.monotonic()
    step(f"preparing certificates and configuration in {PATHS.state}")
    prepare_state()
    step(f"network: {NODE_IP} on lo, bridge {BRIDGE} for pods ({POD_CIDR}), Services {SERVICE_CIDR}")
    configure_network()
    step("starting containerd")
    start_containerd()
    ensure_pause_image()
    load_images([PAUSE_IMAGE])
    step("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
    start_control_plane()
    step("starting the kubelet, kube-proxy, the NetworkPolicy enforcer, CoreDNS and the hostPath provisioner")
    start_node()
    step(f"the local cluster is up in {time.monotonic() - started:.0f} s")
    print(f"    export KUBECONFIG={PATHS.kubeconfig}    (context {CONTEXT})")
    print(f"    kubectl: {CLUSTER_BIN / 'kubectl'}")


# -------------------------------------------------------------------------------------------------- images


def ensure_pause_image() -> None:
    """The sandbox image comes from the Docker engine (built here once: scripts/localcluster/standins/pause)."""
    try:
        images.start_docker()
        if not images.image_exists(PAUSE_IMAGE):
            standins = images.standins()
            step(f"building {PAUSE_IMAGE} (once)")
            images.build_debian(standins["debian"])
            images.build(PAUSE_IMAGE, context=standins["pause"].context, dockerfile=standins["pause"].dockerfile)
    except images.ImageError as error:
        raise ClusterError(str(error)) from None


def containerd_reference(image: str) -> str:
    """The fully qualified name containerd stores ``image`` under (docker.io/library/... for short names)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def load_images(names: list[str]) -> None:
    """Copy the images ``names`` from the Docker engine into the cluster's containerd unless it has that exact image."""
    loaded = json.loads(PATHS.loaded_images.read_text()) if PATHS.loaded_images.exists() else {}
    present = set(ctr("images", "list", "--quiet").stdout.decode().split())
    for image in names:
        image_id = images.image_id(image)
        if image_id is None:
            raise ClusterError(f"image {image} is not in the Docker engine: build it first (`make images`)")
        if loaded.get(image) == image_id and containerd_reference(image) in present:
            step(f"{image} is already in the cluster")
            continue
        step(f"loading {image} into the cluster's containerd")
        save = subprocess.Popen([images.docker_binary(), "save", image], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["ctr", "--address", str(CONTAINERD_SOCKET), "--namespace", "k8s.io", "images", "import", "-"],
            stdin=save.stdout, capture_output=True, check=False,
        )  # fmt: skip
        save.stdout.close()
        if save.wait() != 0 or imported.returncode != 0:
            raise ClusterError(f"loading {image} failed: {imported.stderr.decode().strip()}")
        loaded[image] = image_id
        PATHS.loaded_images.write_text(json.dumps(loaded, indent=2))


# ---------------------------------------------------------------------------------------------------- down


def drain_pods() -> None:
    """Let the kubelet stop every pod itself (so the CNI plugin tears down each pod's network), within a bound."""
    for name in ("kube-controller-manager", "kube-scheduler"):
        stop(name)
    if not (apiserver_healthy() and pid_alive(read_pids().get("kubelet", -1))):
        return
    kubectl("delete", "pods", "--all", "--all-namespaces", "--force", "--grace-period=0", "--wait=false",
            check=False)  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tasks = ctr("tasks", "list", check=False).stdout.decode().splitlines()[1:]
        if not any(" RUNNING" in line for line in tasks):
            return
        time.sleep(0.5)
    print("    (some pods still ran after 90 s: stopping them forcibly)")


def kill_containers() -> None:
    """SIGKILL every process in the kubelet's cgroups, then containerd's shims of this cluster."""
    for procs in Path("/sys/fs/cgroup").glob("*/kubepods/**/cgroup.procs"):
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and str(CONTAINERD_SOCKET).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def remove_containers() -> None:
    """Drop the container records (not the images) so the next start finds no stale pods."""
    if not pid_alive(read_pids().get("containerd", -1)):
        return
    for task in ctr("tasks", "list", "--quiet", check=False).stdout.decode().split():
        ctr("tasks", "delete", "--force", task, check=False)
    containers = ctr("containers", "list", "--quiet", check=False).stdout.decode().split()
    if containers:
        ctr("containers", "delete", *containers, check=False)


def our_mounts() -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        inside = any(mount_point == str(p) or mount_point.startswith(f"{p}/") for p in (PATHS.state, RUN_DIR))
        if inside or re.fullmatch(r"/(var/)?run/netns/cni-[0-9a-f-]+", mount_point):
            mounts.append(mount_point)
    return mounts


def unmount_all() -> None:
    for mount_point in sorted(set(our_mounts()), key=len, reverse=True):
        if run("umount", mount_point, check=False).returncode != 0:
            run("umount", "--lazy", mount_point, check=False)
    for netns in Path("/run/netns").glob("cni-*"):
        with contextlib.suppress(OSError):
            netns.unlink()


IPTABLES_OURS = re.compile(r"\b(KUBE-[A-Z0-9-]+|CNI-[A-Za-z0-9-]+)\b")


def clean_iptables() -> None:
    """Remove kube-proxy's and the kubelet's KUBE-* chains, the CNI plugin's CNI-* chains and this script's rules."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            listing = run(tool, "-t", table, "-S", check=False)
            if listing.returncode != 0:
                continue
            lines = listing.stdout.decode().splitlines()
            for line in lines:
                if line.startswith("-A ") and (RULE_COMMENT in line or IPTABLES_OURS.search(line.split(" ", 2)[2])):
                    chain = line.split()[1]
                    if not IPTABLES_OURS.fullmatch(chain):  # rules inside our chains go with the chain
                        run(tool, "-t", table, "-D", *shlex.split(line[3:]), check=False)
            chains = [
                line.split()[1] for line in lines if line.startswith("-N ") and IPTABLES_OURS.fullmatch(line.split()[1])
            ]
            for chain in chains:
                run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                run(tool, "-t", table, "-X", chain, check=False)


def nftables_table_present() -> bool:
    return run("nft", "list", "table", "inet", NETWORK_POLICIES_TABLE, check=False).returncode == 0


def remove_nftables() -> None:
    """The enforcer's table, which it removes itself when it stops in time (absent: nft says so, and nothing)."""
    if shutil.which("nft"):
        run("nft", "delete", "table", "inet", NETWORK_POLICIES_TABLE, check=False)


def remove_cgroups() -> None:
    for controller in Path("/sys/fs/cgroup").iterdir():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def remove_network() -> None:
    """The bridge, the node address, the CNI plugin's results and the sysctls this cluster changed."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        run("ip", "link", "delete", BRIDGE, check=False)
    if node_address_present():
        run("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo", check=False)
    for result in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        result.unlink()
    if PATHS.state.exists():
        restore_sysctls()


def remove_state(*, purge: bool) -> None:
    """Everything under the state directory but the image cache (unless ``purge``), and the sockets."""
    if PATHS.state.exists():
        keep = set() if purge else {PATHS.containerd_root.name}
        for entry in PATHS.state.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        if purge:
            PATHS.state.rmdir()
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def teardown(*, purge: bool, quiet: bool = False) -> None:
    """Stop every process of the cluster and remove what it added to this machine. Safe to run at any point."""
    say = (lambda _m: None) if quiet else step
    say("stopping the pods (the kubelet removes their networks)")
    if PATHS.state.exists():
        drain_pods()
    say("stopping the cluster's processes")
    for name in reversed(PROCESSES):
        if name != "containerd":
            stop(name)
    kill_containers()
    remove_containers()
    stop("containerd")
    kill_containers()
    say("removing mounts, iptables rules, the bridge and the node address")
    if (CLUSTER_BIN / "kube-proxy").exists():
        run(CLUSTER_BIN / "kube-proxy", "--cleanup", check=False)
    unmount_all()
    clean_iptables()
    remove_nftables()
    remove_network()
    remove_cgroups()
    remove_state(purge=purge)


def cmd_down(purge: bool) -> None:
    check_prerequisites()
    if not any(running().values()) and not RUN_DIR.exists():
        step("no local cluster is running; sweeping for leftovers of an earlier one")
    teardown(purge=purge)
    step(
        "the local cluster is down"
        + (" (image cache removed)" if purge else f" (images kept in {PATHS.containerd_root})")
    )


def cmd_status() -> int:
    states = running()
    for name, up in states.items():
        print(f"    {name:24} {'running' if up else 'stopped'}")
    if not any(states.values()):
        step("the local cluster is not running (`make cluster-up`)")
        return 1
    healthy = apiserver_healthy() and node_ready()
    step(f"node {NODE_NAME}: {'Ready' if healthy else 'not ready'}; KUBECONFIG={PATHS.kubeconfig}")
    return 0 if healthy and all(states.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/localcluster/cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the cluster (idempotent)")
    down = commands.add_parser("down", help="stop the cluster and clean up (idempotent)")
    down.add_argument("--purge", action="store_true", help="also drop the cluster's image cache")
    commands.add_parser("status", help="which processes run; exit 1 unless the cluster is healthy")
    load = commands.add_parser("load-images", help="copy images from the Docker engine into the cluster")
    load.add_argument("images", nargs="+")
    commands.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            cmd_up()
        elif args.command == "down":
            cmd_down(args.purge)
        elif args.command == "status":
            return cmd_status()
        elif args.command == "load-images":
            if not pid_alive(read_pids().get("containerd", -1)):
                raise ClusterError("the local cluster is not running: `make cluster-up` first")
            load_images(args.images)
        elif args.command == "kubeconfig":
            print(PATHS.kubeconfig)
    except ClusterError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
