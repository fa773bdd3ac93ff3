"""Whether this machine can build images and run the local cluster, and what a test does when it cannot.

Both need root on Debian with the tools `make install` puts there (Debian's docker.io, containerd, etcd, ... and the
Kubernetes binaries in .tools/cluster/bin), plus git-sync's upstream source tarball in $GITSYNC_SOURCE (the local
cluster runs the kind profile's git-sync; .ci/run passes the machine's copy). Where that is missing a test skips,
saying why; in CI (CI=true) it fails instead: CI must prove the deployment path, never skip it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scripts.localcluster.cluster import TOOLS
from scripts.localcluster.images import GITSYNC_SOURCE_ENV
from scripts.paths import CLUSTER_BIN


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_capability() -> str | None:
    """Why images and the local cluster cannot run here, or None when they can."""
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        return "images and the local cluster need root on Debian (elsewhere: make kind-up)"
    missing = [tool for tool in TOOLS if not (CLUSTER_BIN / tool).exists()]
    commands = ("dockerd", "containerd", "etcd", "debootstrap", "iptables", "nginx")
    missing += [cmd for cmd in commands if not shutil.which(cmd)]
    if missing:
        return f"{', '.join(missing)} not installed: run `make install` as root (scripts/bootstrap cluster)"
    source = os.environ.get(GITSYNC_SOURCE_ENV, "")
    if not (source and Path(source).is_file()):
        return f"{GITSYNC_SOURCE_ENV} is unset or no file: set it to git-sync's source tarball (docs/cluster.md)"
    return None


def require_cluster_machine() -> None:
    """Skip (fail in CI) unless this machine can build images and run the local cluster."""
    if reason := missing_capability():
        if in_ci():
            pytest.fail(f"CI must run the image and cluster tests, but: {reason}")
        pytest.skip(reason)
