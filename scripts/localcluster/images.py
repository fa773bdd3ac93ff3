"""Images without a registry: `make images` (scripts/localcluster/images) builds the project's image, and where no
registry is reachable the stand-ins of standins/standins.yaml (this folder) it and the local cluster need.

    images build [--official]      stand-ins (debootstrap + docker build; git-sync from $GITSYNC_SOURCE, the
                                   upstream source tarball), then airflow-azblob:local FROM the Airflow stand-in;
                                   --official: only airflow-azblob:local FROM apache/airflow
    images list                    the stand-ins and what they replace
    images standin-for IMAGE       the stand-in built for the official IMAGE
    images docker-start | docker-stop   start (as root, Debian's dockerd) or stop the Docker engine this script
                                   started (pid in .local/docker)

airflow-azblob:local is always built from the repository's Dockerfile, unchanged: only build arguments differ
(AIRFLOW_BASE_IMAGE, PYTHON_VERSION, VCS_REF). Every build gets the CA bundle as the build secret ``ca-bundle``
(default /etc/ssl/certs/ca-certificates.crt; CA_BUNDLE=<file> for a corporate CA, CA_BUNDLE= to pass none), so
pip and npm work behind a TLS-intercepting proxy without the bundle ever being stored in an image. Docker's layer
cache makes a repeated build take seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.localcluster import runc_bounded
from scripts.paths import LOCAL_CLUSTER, ROOT

STANDINS = LOCAL_CLUSTER / "standins" / "standins.yaml"
APP_IMAGE = "airflow-azblob:local"
DOCKER_STATE = ROOT / ".local" / "docker"
# The OCI runtime dockerd gets where root lacks a capability (runc_bounded.py says why), under this name.
BOUNDED_RUNTIME = "runc-bounded"
# BuildKit's cache, bounded (dockerd trims it after builds): unbounded, a day of rebuilds here kept 18 GB.
BUILD_CACHE_KEEP = "8GB"
SYSTEM_DAEMON_CONFIG = Path("/etc/docker/daemon.json")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Where the git-sync stand-in's source tarball is (upstream's git-sync at a release tag, dependencies vendored).
GITSYNC_SOURCE_ENV = "GITSYNC_SOURCE"


class ImageError(Exception):
    """Something the user has to fix; the message says what."""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


@dataclass(frozen=True)
class Standin:
    name: str
    image: str
    replaces: str
    context: str | None = None
    dockerfile: str | None = None
    build: str | None = None
    source: dict[str, str] | None = None  # go-source: the tarball's name, sha256, version; go-module: module, version


def standins() -> dict[str, Standin]:
    entries = yaml.safe_load(STANDINS.read_text())
    return {name: Standin(name=name, **entry) for name, entry in entries.items()}


def standin_for(image: str) -> str:
    """The stand-in of the official ``image`` (names compared without the docker.io/library/ prefix)."""

    def short(name: str) -> str:
        return name.removeprefix("docker.io/").removeprefix("library/")

    for standin in standins().values():
        if short(standin.replaces) == short(image):
            return standin.image
    raise ImageError(f"no stand-in replaces {image}: add one to {STANDINS.relative_to(ROOT)}")


def docker_binary() -> str:
    """Debian's client where both exist: a newer client on PATH may want a buildx plugin that is missing."""
    return os.environ.get("DOCKER") or ("/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")


def docker(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run([docker_binary(), *args], capture_output=capture, text=True, check=check, env=env)


def image_exists(image: str) -> bool:
    return image_id(image) is not None


def image_id(image: str) -> str | None:
    done = docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


@contextlib.contextmanager
def replacing(image: str):
    """Around a build that (re)tags ``image``: the image it replaced is removed once no tag names it. Otherwise each
    rebuild (every commit changes the app image's VCS_REF) leaves its predecessor dangling: gigabytes in a day."""
    before = image_id(image)
    yield
    if before and before != image_id(image):
        tags = docker("image", "inspect", "--format", "{{len .RepoTags}}", before, check=False).stdout.strip()
        if tags == "0":  # by ID, `rm` would also untag and delete an image another tag still names
            docker("image", "rm", before, check=False)  # refused while a container uses it: kept


# ---------------------------------------------------------------------------------------------- the engine


def docker_running() -> bool:
    return shutil.which(docker_binary()) is not None and docker("info", check=False).returncode == 0


def dockerd_argv() -> list[str]:
    """Debian's dockerd; where this machine's bounding set lacks a capability, with runc_bounded.py as its default
    runtime, so privileged containers (kind's nodes) start."""
    argv = ["dockerd", "--config-file", str(daemon_config())]
    if runc_bounded.missing(runc_bounded.bounding_set()):
        runtime = Path(runc_bounded.__file__).resolve()
        argv += ["--add-runtime", f"{BOUNDED_RUNTIME}={runtime}", "--default-runtime", BOUNDED_RUNTIME]
    return argv


def daemon_config() -> Path:
    """dockerd's configuration in .local/docker: the system's daemon.json, if any, with BuildKit's cache bounded
    unless that file bounds it itself."""
    config = json.loads(SYSTEM_DAEMON_CONFIG.read_text()) if SYSTEM_DAEMON_CONFIG.exists() else {}
    config.setdefault("builder", {}).setdefault("gc", {"enabled": True, "defaultKeepStorage": BUILD_CACHE_KEEP})
    DOCKER_STATE.mkdir(parents=True, exist_ok=True)
    path = DOCKER_STATE / "daemon.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def start_docker(timeout: float = 60) -> bool:
    """Start Debian's dockerd when no engine answers (root only). True when this call started it."""
    if docker_running():
        return False
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        raise ImageError(
            "no Docker engine answers: start Docker (e.g. `sudo systemctl start docker`), or as root on Debian "
            "run `make install` (it installs docker.io) and this script starts dockerd itself"
        )
    DOCKER_STATE.mkdir(parents=True, exist_ok=True)
    with open(DOCKER_STATE / "dockerd.log", "ab") as log:
        process = subprocess.Popen(
            dockerd_argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (DOCKER_STATE / "dockerd.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not docker_running():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (DOCKER_STATE / "dockerd.log").read_text(errors="replace").splitlines()[-10:]
            raise ImageError("dockerd did not start; last lines of .local/docker/dockerd.log:\n" + "\n".join(tail))
        time.sleep(0.2)
    step(f"started dockerd (pid {process.pid}, log .local/docker/dockerd.log)")
    return True


def stop_docker(timeout: float = 60) -> None:
    """Stop the dockerd this script started (its pid file), waiting until it has exited."""
    pid_file = DOCKER_STATE / "dockerd.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink()


# ---------------------------------------------------------------------------------------------- the builds


def ca_bundle() -> str | None:
    bundle = os.environ.get("CA_BUNDLE", DEFAULT_CA_BUNDLE)
    if not bundle:
        return None
    if not Path(bundle).is_file():
        if "CA_BUNDLE" in os.environ:
            raise ImageError(f"CA_BUNDLE={bundle} is not a file: name a PEM bundle, or set CA_BUNDLE= for none")
        return None
    return bundle


def build(image: str, *, context: str, dockerfile: str, build_args: dict[str, str] | None = None) -> float:
    """``docker build`` with the CA bundle secret; returns the seconds it took. Output shown only on failure."""
    argv = ["build", "--tag", image, "--file", str(ROOT / dockerfile)]
    if bundle := ca_bundle():
        argv += ["--secret", f"id=ca-bundle,src={bundle}"]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    with replacing(image):
        done = docker(*argv, str(ROOT / context), check=False)
    if done.returncode != 0:
        raise ImageError(f"docker build of {image} ({dockerfile}) failed:\n{done.stderr[-4000:]}")
    return time.monotonic() - started


def build_debian(standin: Standin) -> float:
    """Debian's minbase root filesystem from debootstrap, imported as an image (nothing to pull)."""
    if image_exists(standin.image):
        return 0.0
    if not shutil.which("debootstrap") or os.geteuid() != 0:
        raise ImageError("building the Debian stand-in needs root and debootstrap: run `make install` as root")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="standin-debian-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=ca-certificates", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ImageError(f"debootstrap {DEBIAN_SUITE} from {DEBIAN_MIRROR} failed:\n{done.stdout[-3000:]}")
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
            f"deb {DEBIAN_MIRROR.replace('/debian', '/debian-security')} {DEBIAN_SUITE}-security main\n"
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        with replacing(standin.image):
            imported = subprocess.run(
                [docker_binary(), "import", "--change", 'CMD ["bash"]', "-", standin.image],
                stdin=tar.stdout, capture_output=True, text=True, check=False,
            )  # fmt: skip
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageError(f"docker import of {standin.image} failed: {imported.stderr.strip()}")
    return time.monotonic() - started


def go_source(standin: Standin) -> Path:
    """The source tarball of a go-source stand-in, checked against its sha256 (the local cluster runs the kind
    profile's git-sync: no cluster without it)."""
    source = standin.source or {}
    given = os.environ.get(GITSYNC_SOURCE_ENV, "")
    how = (
        f"set {GITSYNC_SOURCE_ENV} to {source['name']} (kubernetes/git-sync {source['version']} as `git archive` "
        f"writes it, vendor/ included; sha256 {source['sha256']})"
    )
    if not given:
        raise ImageError(f"{standin.image} is built from upstream source and none was given: {how}")
    path = Path(given)
    if not path.is_file():
        raise ImageError(f"{GITSYNC_SOURCE_ENV}={given} is not a file: {how}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source["sha256"]:
        raise ImageError(f"{path} has sha256 {digest}, not {source['sha256']}: {how}")
    return path


def built_from(image: str, label: str, value: str) -> bool:
    """Whether ``image`` exists and its ``label`` says it was built from ``value`` (a go stand-in's source)."""
    if not image_exists(image):
        return False
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    return (labels or {}).get(label) == value


def build_around_binary(standin: Standin, context: Path, label: str, value: str) -> None:
    """The stand-in's Dockerfile built in ``context``, which holds the binary, labelled with what it was built from."""
    shutil.copy(ROOT / standin.dockerfile, context / "Dockerfile")
    with replacing(standin.image):
        done = docker("build", "--tag", standin.image, "--label", f"{label}={value}", str(context), check=False)
    if done.returncode != 0:
        raise ImageError(f"docker build of {standin.image} failed:\n{done.stderr[-4000:]}")


def build_go_source(standin: Standin) -> float:
    """A Go program built here from its source tarball (offline: vendored modules), then the stand-in's Dockerfile
    around the binary. Skipped when the image already holds a build of the same source (its label)."""
    source = standin.source or {}
    label = "standin.source.sha256"
    if built_from(standin.image, label, source["sha256"]):
        return 0.0
    tarball = go_source(standin)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"standin-{standin.name}-") as tmp:
        work, context = Path(tmp) / "src", Path(tmp) / "context"
        work.mkdir()
        context.mkdir()
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(work)], check=True)
        (tree,) = work.iterdir()
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=vendor", "GOPROXY": "off"}
        ldflags = f"-s -w -X k8s.io/git-sync/pkg/version.VERSION={source['version']}"
        built = subprocess.run(
            ["go", "build", "-trimpath", "-o", str(context / standin.name), "-ldflags", ldflags, "."],
            cwd=tree, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if built.returncode != 0:
            raise ImageError(f"go build of {tarball.name} failed:\n{built.stderr[-3000:]}")
        build_around_binary(standin, context, label, source["sha256"])
    return time.monotonic() - started


def build_go_module(standin: Standin) -> float:
    """A Go program built here from the Go module proxy (``module@version``), then the stand-in's Dockerfile around
    the binary. Skipped when the image already holds a build of that module version (its label)."""
    source = standin.source or {}
    wanted, label = f"{source['module']}@{source['version']}", "standin.source.module"
    if built_from(standin.image, label, wanted):
        return 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"standin-{standin.name}-") as context:
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOBIN": context}
        built = subprocess.run(
            ["go", "install", "-trimpath", "-ldflags", "-s -w", wanted],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if built.returncode != 0:
            raise ImageError(f"go install {wanted} failed:\n{built.stderr[-3000:]}")
        build_around_binary(standin, Path(context), label, wanted)
    return time.monotonic() - started


def python_version_of(image: str) -> str:
    match = re.search(r"-python(\d+\.\d+)$", image)
    if not match:
        raise ImageError(f"{image}: the Airflow stand-in's tag must end in -python<major.minor>")
    return match[1]


def vcs_ref() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def build_app(*, base: str | None, image: str = APP_IMAGE, bake_dags: bool = False) -> float:
    """airflow-azblob:local (or ``image``) from the repository's Dockerfile; ``base`` replaces the official base
    image; ``bake_dags`` copies dags/ into it (the chart's `dags.mode: image`)."""
    args = {"VCS_REF": vcs_ref()} | ({"BAKE_DAGS": "true"} if bake_dags else {})
    if base:
        args |= {"AIRFLOW_BASE_IMAGE": base, "PYTHON_VERSION": python_version_of(base)}
    return build(image, context=".", dockerfile="Dockerfile", build_args=args)


def build_all(*, official: bool) -> dict[str, float]:
    """Every image the local cluster needs (or only the app image on the official base); seconds per image."""
    timings: dict[str, float] = {}
    if not official:
        for standin in standins().values():
            step(f"stand-in {standin.image} (for {standin.replaces})")
            if standin.build == "debootstrap":
                timings[standin.image] = build_debian(standin)
            elif standin.build == "go-source":
                timings[standin.image] = build_go_source(standin)
            elif standin.build == "go-module":
                timings[standin.image] = build_go_module(standin)
            elif standin.build == "kind-node":
                from scripts.localcluster import kind_node  # it builds on this module's helpers

                timings[standin.image] = kind_node.build_node(standin)
            else:
                timings[standin.image] = build(standin.image, context=standin.context, dockerfile=standin.dockerfile)
    base = None if official else standins()["airflow"].image
    step(f"{APP_IMAGE} from the Dockerfile (base {base or 'apache/airflow, pulled'})")
    timings[APP_IMAGE] = build_app(base=base)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/localcluster/images", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build the stand-ins and airflow-azblob:local")
    build_parser.add_argument("--official", action="store_true", help="only airflow-azblob:local, FROM apache/airflow")
    commands.add_parser("list", help="the stand-ins and what they replace")
    commands.add_parser("standin-for", help="the stand-in built for an official image").add_argument("image")
    commands.add_parser("docker-start", help="start dockerd unless an engine answers")
    commands.add_parser("docker-stop", help="stop the dockerd started by docker-start")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            start_docker()
            for image, seconds in build_all(official=args.official).items():
                print(f"    {image:40} {seconds:6.1f} s")
        elif args.command == "list":
            for standin in standins().values():
                print(f"    {standin.image:36} stands in for {standin.replaces}")
        elif args.command == "standin-for":
            print(standin_for(args.image))
        elif args.command == "docker-start":
            start_docker()
        elif args.command == "docker-stop":
            stop_docker()
    except ImageError as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
