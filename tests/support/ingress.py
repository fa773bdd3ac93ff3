"""A test-only Ingress controller for the local cluster: Debian's nginx, configured from the cluster's Ingress objects.

No ingress controller builds here (docs/chart.md: ingress-nginx, Traefik, Contour, Envoy Gateway, HAProxy's and
Kong's do not), so this does the one job of one: it reads every Ingress of a namespace from the apiserver, resolves
each backend Service to its ClusterIP and port, and serves those rules with a real reverse proxy on this machine
(kube-proxy routes the node's traffic to ClusterIPs), the way ingress-nginx would for these fields: `host`
(a server per host; rules without one in the default server), `path` with pathType Prefix (the path itself and
everything under it, element by element, never rewritten) or Exact, and the Service's port by name or number. TLS
and annotations are not served. Requests carry Host, X-Forwarded-For/-Proto/-Host as a controller sets them.

Started and stopped by the test that uses it, by its own process id.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.devstack.services import free_port, wait_for_port

NGINX = "/usr/sbin/nginx"


@dataclass(frozen=True)
class Route:
    host: str  # "" for every host
    path: str
    path_type: str  # Prefix or Exact
    upstream: str  # <cluster ip>:<port>


def routes(ingresses: list[dict[str, Any]], service: Callable[[str], dict[str, Any]]) -> list[Route]:
    """The routes of these Ingress objects; ``service(name)`` returns that Service object."""
    found = []
    for ingress in ingresses:
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                svc = service(backend["name"])
                wanted = backend["port"]
                (port,) = [
                    p["port"]
                    for p in svc["spec"]["ports"]
                    if wanted.get("name") == p.get("name") or wanted.get("number") == p["port"]
                ]
                found.append(
                    Route(rule.get("host", ""), path["path"], path["pathType"], f"{svc['spec']['clusterIP']}:{port}")
                )
    return found


def _location(route: Route) -> str:
    proxy = (
        f"proxy_pass http://{route.upstream};"
        " proxy_set_header Host $http_host;"
        " proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
        " proxy_set_header X-Forwarded-Proto $scheme;"
        " proxy_set_header X-Forwarded-Host $http_host;"
        " proxy_http_version 1.1; proxy_read_timeout 120s;"
        # ingress-nginx's default (proxy-buffering: off). Buffered, a response larger than the memory buffers went
        # to a temp file the workers (nobody) may not write in this root-owned prefix: the UI's 7 MB script bundle
        # arrived cut off ("open() .../proxy/0000000001 failed (13: Permission denied)").
        " proxy_buffering off;"
    )
    if route.path_type == "Exact":
        return f"location = {route.path} {{ {proxy} }}"
    if route.path == "/":
        return f"location / {{ {proxy} }}"
    # Prefix: the path element itself and everything below it, never /team-ab for /team-a.
    base = route.path.rstrip("/")
    return f"location = {base} {{ {proxy} }}\n    location {base}/ {{ {proxy} }}"


def nginx_conf(all_routes: list[Route], port: int, prefix: Path) -> str:
    by_host: dict[str, list[Route]] = {}
    for route in all_routes:
        by_host.setdefault(route.host, []).append(route)
    by_host.setdefault("", [])
    servers = []
    for host, host_routes in by_host.items():
        name = host or "_"
        default = " default_server" if not host else ""
        locations = [_location(r) for r in host_routes]
        if not any(r.path == "/" and r.path_type == "Prefix" for r in host_routes):
            locations.append("location / { return 404; }")  # what no rule routes: the controller's default 404
        locations = "\n    ".join(locations)
        servers.append(
            f"  server {{\n    listen 127.0.0.1:{port}{default};\n    server_name {name};\n    {locations}\n  }}"
        )
    return (
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\nworker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {prefix}/access.log;\n"
        f"  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;\n"
        + "\n".join(servers)
        + "\n}\n"
    )


@dataclass
class NginxIngress:
    """The running controller: requests go to ``url`` with the Ingress host in the Host header."""

    port: int
    routes: list[Route]
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text(errors="replace")


@contextmanager
def nginx_ingress(
    ingresses: list[dict[str, Any]], service: Callable[[str], dict[str, Any]], port: int | None = None
) -> Iterator[NginxIngress]:
    """nginx serving these Ingress objects on ``port`` of 127.0.0.1 (default: a free one), until the block ends."""
    prefix = Path(tempfile.mkdtemp(prefix="ingress-nginx-"))
    port = port or free_port()
    found = routes(ingresses, service)
    if not found:
        raise AssertionError("no Ingress rule to serve: is ingress.enabled set?")
    (prefix / "nginx.conf").write_text(nginx_conf(found, port, prefix))
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        raise AssertionError(f"nginx refused the configuration:\n{checked.stderr}")
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Until it accepts: nginx writes its pid file before it listens (a request right after got "refused").
        try:
            wait_for_port(port, timeout=20, process=process)
        except (RuntimeError, TimeoutError) as err:
            output = process.stderr.read().decode(errors="replace") if process.poll() is not None else ""
            raise AssertionError(f"nginx did not start ({err}): {output}") from err
        yield NginxIngress(port, found, prefix)
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(prefix, ignore_errors=True)
