"""Run a container exactly as the chart renders it, but in Docker: how tests/image holds images to the chart.

``run_rendered(container, pod_spec, env=..., config_maps=...)`` turns a rendered container (image, command/args,
env, security context, volume mounts) into ``docker run``: command -> entrypoint, runAsUser/runAsGroup -> --user,
readOnlyRootFilesystem -> --read-only, dropped capabilities and no privilege escalation likewise, every volume
mount -> a fresh empty directory of mode 0777 (what the kubelet makes of an emptyDir, and the local cluster's
provisioner of a claim), or for a configMap volume the ConfigMap's files (``config_maps``, read-only). Values the
chart takes from Secrets come from ``env``. The container and its directories are removed when the ``with`` block
ends.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.localcluster.images import docker_binary


def docker(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=timeout, check=check)


@dataclass
class Container:
    name: str
    volumes: Path | None = None  # the host folder holding each volume mount's directory (run_rendered)

    def volume(self, name: str) -> Path:
        """The host directory bound to the container's volume mount ``name``."""
        assert self.volumes is not None, "not started by run_rendered"
        return self.volumes / name

    def wait_until_exited(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.state()["Running"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still ran after {timeout:.0f} s; log:\n{self.logs()[-3000:]}")
            time.sleep(0.2)

    def logs(self) -> str:
        done = docker("logs", self.name)
        return done.stdout + done.stderr

    def exec(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        flags = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
        return docker("exec", *flags, self.name, *args)

    def ip(self) -> str:
        networks = json.loads(docker("inspect", self.name, check=True).stdout)[0]["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def state(self) -> dict[str, Any]:
        return json.loads(docker("inspect", self.name, check=True).stdout)[0]["State"]

    def wait_until(self, what: str, condition: Any, *, timeout: float) -> None:
        """Poll ``condition()`` until true; fail with the container's log if it is not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or not self.state()["Running"]:
                raise AssertionError(f"{what} did not happen within {timeout:.0f} s; log:\n{self.logs()[-3000:]}")
            time.sleep(0.2)


def run_argv(
    container: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    env: Mapping[str, str],
    name: str,
    volumes: Path,
    *,
    config_maps: Mapping[str, Mapping[str, str]],
) -> list[str]:
    pod_security = pod_spec.get("securityContext") or {}
    security = container.get("securityContext") or {}
    argv = ["run", "--detach", "--name", name]
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    if user is not None:
        argv += ["--user", f"{user}:{security.get('runAsGroup', pod_security.get('runAsGroup', 0))}"]
    if security.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if "ALL" in (security.get("capabilities") or {}).get("drop", []):
        argv += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    pod_volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        # Not a tmpfs: Docker gives a tmpfs over an existing image directory that directory's root-owned mode.
        source = volumes / mount["name"]
        source.mkdir(exist_ok=True)
        source.chmod(0o777)
        if config_map := pod_volumes.get(mount["name"], {}).get("configMap"):
            write_config_map(source, config_map, config_maps)
        argv += ["--mount", f"type=bind,source={source},destination={mount['mountPath']}"]
    for variable in container.get("env", []):
        value = variable["value"] if "value" in variable else env[variable["name"]]
        argv += ["--env", f"{variable['name']}={value}"]
    args = list(container.get("args", []))
    if command := container.get("command"):
        argv += ["--entrypoint", command[0]]
        args = [*command[1:], *args]
    return [*argv, container["image"], *args]


def write_config_map(folder: Path, volume: Mapping[str, Any], config_maps: Mapping[str, Mapping[str, str]]) -> None:
    """The files a configMap volume shows: its ConfigMap's keys (or the volume's items), read-only for everyone."""
    if volume["name"] not in config_maps:
        raise AssertionError(f"the pod mounts ConfigMap {volume['name']}: pass its data in config_maps")
    data = config_maps[volume["name"]]
    items = volume.get("items") or [{"key": key, "path": key} for key in data]
    for item in items:
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]])
        target.chmod(0o444)


@contextmanager
def run_rendered(
    container: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Container]:
    """``container`` of ``pod_spec`` under Docker; ``config_maps`` (name -> data) fill its configMap volumes."""
    name = f"contract-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as volumes:
        done = docker(*run_argv(container, pod_spec, env or {}, name, Path(volumes), config_maps=config_maps or {}))
        if done.returncode != 0:
            raise AssertionError(f"docker run of {container['image']} failed: {done.stderr}")
        try:
            yield Container(name, Path(volumes))
        finally:
            docker("rm", "--force", "--volumes", name)
