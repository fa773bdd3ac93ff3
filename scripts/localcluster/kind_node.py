"""The kind node stand-in: kindest/node for Kubernetes v1.34, built on this machine by kind itself.

kind's node images are pulled from Docker Hub; where no registry is reachable, this builds one the way kind's own
release does, from parts built here:

1. the base (standins/kind-node/Dockerfile): kind's images/base files (from the kind module) on the Debian stand-in,
   with Debian's systemd, containerd, runc and CNI plugins, and crictl;
2. a Kubernetes release tarball as kind's `--type file` reads it (kubernetes/version, kubernetes/server/bin/ with
   kubeadm, kubelet, kubectl and the image archives), from the project's Kubernetes build;
3. every image the node starts without pulling, under the name kind and kubeadm ask for: the control plane's
   (`kubeadm config images list`), containerd's sandbox image (kind's containerd config), kindnetd and the local-path
   provisioner with its helper (kind's default CNI and storage manifests). Each is built here: the binaries of
   .tools/cluster/bin (scripts/bootstrap) in small images, kindnetd as a stand-in (standins/kind-node/kindnetd);
4. `kind build node-image --type file`, which copies the binaries in, writes /kind/version and kind's manifests and
   imports the archives into the node's containerd. kind side-loads only the four kube-* archives and pulls
   everything else, so the other images travel in kube-proxy.tar, under the fully qualified names it compares.

The image is labelled with a digest of its inputs: a second build with the same inputs takes a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from scripts.localcluster.images import (
    ImageError,
    Standin,
    build_around_binary,
    built_from,
    docker,
    docker_binary,
    replacing,
    standins,
)
from scripts.paths import LOCAL_CLUSTER, ROOT

CONTEXT = LOCAL_CLUSTER / "standins" / "kind-node"
CLUSTER_BIN = ROOT / ".tools" / "cluster" / "bin"
KIND = ROOT / ".tools" / "bin" / "kind"
LABEL = "standin.source.inputs"
# The four archives kind's tarball builder loads (kube/builder_tarball.go); the last carries the other images too.
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
KUBE_BINARIES = ("kubeadm", "kubelet", "kubectl")


@dataclass(frozen=True)
class NodeImage:
    """One image the node runs, and how it is made here: a binary of .tools/cluster/bin in a Dockerfile of
    standins/kind-node, or an existing stand-in under a new name."""

    name: str
    dockerfile: str | None = None
    binary: str | None = None
    command: str | None = None
    retag: str | None = None


def kind_version() -> str:
    """The kind scripts/bootstrap builds (KIND_VERSION): the node image follows that kind's contract."""
    match = re.search(r'^KIND_VERSION="(v[0-9.]+)"', (ROOT / "scripts" / "bootstrap").read_text(), re.MULTILINE)
    if not match:
        raise ImageError("scripts/bootstrap pins no KIND_VERSION")
    return match[1]


def kind_source(version: str) -> Path:
    """The kind module's source at ``version`` (Go's module cache, from the module proxy)."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{version}"],
        capture_output=True, text=True, check=False, env={**os.environ, "GOFLAGS": "-mod=mod"},
    )  # fmt: skip
    if done.returncode != 0:
        raise ImageError(f"go mod download sigs.k8s.io/kind@{version} failed:\n{done.stderr[-2000:]}")
    return Path(json.loads(done.stdout)["Dir"])


def go_constant(source: Path, file: str, name: str) -> str:
    """A string constant of kind's node image builder (pkg/build/nodeimage/<file>): the images its manifests use."""
    text = (source / "pkg" / "build" / "nodeimage" / file).read_text()
    match = re.search(rf'^const {name} = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise ImageError(f"kind's {file} defines no {name}: is this a kind release the stand-in knows?")
    return match[1]


def sandbox_image(source: Path) -> str:
    """containerd's sandbox image in kind's base config: kind starts every pod with it instead of kubeadm's pause."""
    config = (source / "images" / "base" / "files" / "etc" / "containerd" / "config.toml").read_text()
    match = re.search(r'^\s*sandbox_image = "([^"]+)"', config, re.MULTILINE)
    if not match:
        raise ImageError("kind's containerd config names no sandbox_image")
    return match[1]


def kubernetes_version() -> str:
    kubeadm = CLUSTER_BIN / "kubeadm"
    done = subprocess.run([str(kubeadm), "version", "-o", "short"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{kubeadm} does not run: run `make install` as root (scripts/bootstrap cluster)")
    return done.stdout.strip()


def kubeadm_images(version: str) -> list[str]:
    done = subprocess.run(
        [str(CLUSTER_BIN / "kubeadm"), "config", "images", "list", "--kubernetes-version", version],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ImageError(f"kubeadm config images list failed:\n{done.stderr[-2000:]}")
    return done.stdout.split()


def fully_qualified(name: str) -> str:
    """``name`` as containerd (and kind's comparison) spells it: Docker Hub's names with docker.io/ and library/."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def node_images(source: Path, version: str) -> list[NodeImage]:
    """Every image the node starts, named as kubeadm and kind ask for it, with how each is made here."""
    made: list[NodeImage] = []
    for name in kubeadm_images(version):
        component = name.rsplit("/", 1)[1].split(":")[0]
        if component == "kube-proxy":
            made.append(NodeImage(name, dockerfile="kube-proxy.Dockerfile", binary="kube-proxy"))
        elif component in CONTROL_PLANE or component == "etcd":
            made.append(NodeImage(name, dockerfile="component.Dockerfile", binary=component, command=component))
        elif component == "coredns":
            made.append(NodeImage(name, dockerfile="coredns.Dockerfile", binary="coredns"))
        elif component != "pause":  # kind replaces kubeadm's pause with containerd's sandbox image
            raise ImageError(f"kubeadm {version} needs {name}, which the kind node stand-in does not build")
    pause, debian = standins()["pause"], standins()["debian"]
    storage_helper = go_constant(source, "const_storage.go", "storageHelperImage")
    return [
        *made,
        NodeImage(sandbox_image(source), retag=pause.image),
        NodeImage(go_constant(source, "const_cni.go", "kindnetdImage"), dockerfile="kindnetd.Dockerfile"),
        NodeImage(
            go_constant(source, "const_storage.go", "storageProvisionerImage"),
            dockerfile="component.Dockerfile",
            binary="local-path-provisioner",
            command="local-path-provisioner",
        ),
        NodeImage(storage_helper, retag=debian.image),  # the helper runs `sh` scripts: mkdir, rm
    ]


def check_versions(images: list[NodeImage]) -> None:
    """Each binary's own version agrees with the tag it is shipped under (etcd 3.6.5 as etcd:3.6.5-0)."""
    for image in images:
        if image.binary not in ("etcd", "coredns"):
            continue
        tag = image.name.rsplit(":", 1)[1].removeprefix("v").split("-")[0]
        flag = "--version" if image.binary == "etcd" else "-version"
        said = subprocess.run(
            [str(CLUSTER_BIN / image.binary), flag], capture_output=True, text=True, check=False
        ).stdout
        if not re.search(rf"\b{re.escape(tag)}\b", said):
            raise ImageError(
                f"{CLUSTER_BIN / image.binary} reports {said.strip()!r}, but the node needs {image.name}: "
                "rebuild it with scripts/bootstrap cluster at the version kubeadm asks for"
            )


def inputs_digest(kind: str, images: list[NodeImage], base_files: Path) -> str:
    """What the node image is made of: kind's version, this folder, kind's base files, each binary and stand-in."""
    digest = hashlib.sha256(kind.encode())
    for path in sorted([*CONTEXT.iterdir(), *base_files.rglob("*")]):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    binaries = {*(image.binary for image in images if image.binary), *KUBE_BINARIES, "crictl"}
    for binary in sorted(binaries):  # Go builds with -trimpath are reproducible: a fresh checkout hashes the same
        with open(CLUSTER_BIN / binary, "rb") as file:
            digest.update(binary.encode() + hashlib.file_digest(file, "sha256").digest())
    for image in images:
        digest.update(image.name.encode())
        if image.retag:
            digest.update(docker("image", "inspect", "--format", "{{.Id}}", image.retag).stdout.encode())
    return digest.hexdigest()


def build_image(image: NodeImage) -> None:
    if image.retag:
        docker("tag", image.retag, image.name)
        return
    with tempfile.TemporaryDirectory(prefix="kind-node-image-") as tmp:
        context = Path(tmp)
        for path in CONTEXT.iterdir():
            if path.is_file():
                shutil.copy(path, context / path.name)
        if image.binary:
            shutil.copy(CLUSTER_BIN / image.binary, context / "binary")
        argv = ["build", "--tag", image.name, "--file", str(context / image.dockerfile)]
        if image.command:
            argv += ["--build-arg", f"COMMAND={image.command}"]
        done = docker(*argv, str(context), check=False)
        if done.returncode != 0:
            raise ImageError(f"docker build of {image.name} ({image.dockerfile}) failed:\n{done.stderr[-4000:]}")


def save(names: list[str], archive: Path) -> None:
    """``docker save`` of ``names`` into ``archive`` as kind reads it: every tag fully qualified (docker writes Docker
    Hub's names short, kind compares them long), and `repositories` before manifest.json (kind reads the tags of
    whichever comes first, and of manifest.json only its first image's). Else kind would pull them."""
    saved = archive.with_suffix(".docker.tar")
    with open(saved, "wb") as out:
        done = subprocess.run([docker_binary(), "save", *names], stdout=out, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise ImageError(f"docker save {' '.join(names)} failed: {done.stderr.decode().strip()}")
    with tarfile.open(saved) as source, tarfile.open(archive, "w") as target:
        manifest = None
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            if member.name == "manifest.json":
                manifest = (member, json.load(data))
                continue
            if member.name == "repositories":
                repositories = json.load(data)
                renamed = {fully_qualified(repo + ":_").rsplit(":", 1)[0]: tags for repo, tags in repositories.items()}
                data, member.size = _json_member(renamed)
            target.addfile(member, data)
        if manifest is None:
            raise ImageError(f"docker save {' '.join(names)} wrote no manifest.json")
        member, entries = manifest
        for entry in entries:
            entry["RepoTags"] = [fully_qualified(tag) for tag in entry.get("RepoTags") or []]
        data, member.size = _json_member(entries)
        target.addfile(member, data)
    saved.unlink()


def _json_member(document: object) -> tuple[io.BytesIO, int]:
    raw = json.dumps(document).encode()
    return io.BytesIO(raw), len(raw)


def release_tarball(version: str, images: list[NodeImage], tarball: Path) -> None:
    """kubernetes-server-linux-amd64.tar.gz as kind's `--type file` reads it."""
    with tempfile.TemporaryDirectory(prefix="kind-node-release-") as tmp:
        bin_dir = Path(tmp) / "kubernetes" / "server" / "bin"
        bin_dir.mkdir(parents=True)
        (Path(tmp) / "kubernetes" / "version").write_text(version + "\n")
        for binary in KUBE_BINARIES:
            shutil.copy(CLUSTER_BIN / binary, bin_dir / binary)
        by_component = {image.binary: image.name for image in images if image.binary in CONTROL_PLANE}
        others = [image.name for image in images if image.binary not in CONTROL_PLANE]
        for component in CONTROL_PLANE:
            extra = others if component == "kube-proxy" else []
            save([by_component[component], *extra], bin_dir / f"{component}.tar")
        with tarfile.open(tarball, "w:gz", compresslevel=1) as out:
            out.add(Path(tmp) / "kubernetes", arcname="kubernetes")


def build_base(standin: Standin, kind: str, base_files: Path, digest: str) -> str:
    base = standin.image.split(":")[0] + "-base:" + kind
    if built_from(base, LABEL, digest):
        return base
    with tempfile.TemporaryDirectory(prefix="kind-node-base-") as tmp:
        context = Path(tmp)
        shutil.copytree(base_files, context / "files")
        shutil.copy(CLUSTER_BIN / "crictl", context / "crictl")
        shutil.copy(CONTEXT / "ctr", context / "ctr")
        build_around_binary(replace(standin, image=base), context, LABEL, digest)
    return base


def build_node(standin: Standin) -> float:
    """The kind node stand-in (standins.yaml's kind-node); skipped when its label matches the inputs."""
    for binary in (*KUBE_BINARIES, "crictl", "etcd", "local-path-provisioner", "coredns", *CONTROL_PLANE):
        if not (CLUSTER_BIN / binary).exists():
            raise ImageError(f"{CLUSTER_BIN / binary} is missing: run `make install` as root (bootstrap cluster)")
    if not KIND.exists():
        raise ImageError(f"{KIND} is missing: run `make install` (scripts/bootstrap kind)")
    kind = kind_version()
    source = kind_source(kind)
    base_files = source / "images" / "base" / "files"
    version = kubernetes_version()
    if standin.image.rsplit(":", 1)[1] != version:
        raise ImageError(
            f"{standin.image} in standins.yaml names another Kubernetes than the one built ({version}, "
            "scripts/localcluster/config/kubernetes/go.mod): make the two agree"
        )
    images = node_images(source, version)
    check_versions(images)
    digest = inputs_digest(kind, images, base_files)
    if built_from(standin.image, LABEL, digest):
        return 0.0
    started = time.monotonic()
    base = build_base(standin, kind, base_files, digest)
    for image in images:
        build_image(image)
    built = f"{standin.image}-unlabelled"
    with tempfile.TemporaryDirectory(prefix="kind-node-") as tmp:
        tarball = Path(tmp) / "kubernetes-server-linux-amd64.tar.gz"
        release_tarball(version, images, tarball)
        # TMPDIR: kind extracts the tarball into a k8s-tar-extract-* folder it leaves behind (1 GB a build)
        done = subprocess.run(
            [str(KIND), "build", "node-image", "--type", "file", "--base-image", base, "--image", built, str(tarball)],
            capture_output=True, text=True, check=False, env={**os.environ, "TMPDIR": tmp},
        )  # fmt: skip
        if done.returncode != 0:
            raise ImageError(f"kind build node-image failed:\n{(done.stdout + done.stderr)[-4000:]}")
        label = Path(tmp) / "label"  # the labelling build's context: its Dockerfile alone, not the tarball
        label.mkdir()
        (label / "Dockerfile").write_text(f"FROM {built}\n")
        with replacing(standin.image):
            labelled = docker("build", "--tag", standin.image, "--label", f"{LABEL}={digest}", str(label), check=False)
        if labelled.returncode != 0:
            raise ImageError(f"labelling {standin.image} failed:\n{labelled.stderr[-2000:]}")
    docker("image", "rm", built)
    return time.monotonic() - started
