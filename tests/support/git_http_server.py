"""A Git server over HTTP with Basic authentication, run in a pod by tests/cluster/test_dags_by_git_over_http.py: Git's
own smart-HTTP server (`git http-backend`, a CGI program) behind a check of the username and password a hosted Git
service asks for (a personal access token). Standard library only: it runs on the Airflow image's Python and git.

Environment: GIT_PROJECT_ROOT (a writable folder), GIT_MIRROR_OF (a repository URL: served as <root>/dags.git, a
mirror taken at start, partial clones allowed), GIT_USERNAME, GIT_PASSWORD; argv: the port. Every request is logged
as `<status> <user or -> <method> <path>`, so a test can tell who fetched."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

EXPECTED = "Basic " + base64.b64encode(f"{os.environ['GIT_USERNAME']}:{os.environ['GIT_PASSWORD']}".encode()).decode()
# What git http-backend reads of a CGI request besides the body (GIT_PROTOCOL carries protocol v2's request header).
CGI = {
    "REQUEST_METHOD": "REQUEST_METHOD",
    "PATH_INFO": "PATH_INFO",
    "QUERY_STRING": "QUERY_STRING",
    "CONTENT_TYPE": "CONTENT_TYPE",
    "REMOTE_ADDR": "REMOTE_ADDR",
    "HTTP_CONTENT_ENCODING": "HTTP_CONTENT_ENCODING",
    "GIT_PROTOCOL": "HTTP_GIT_PROTOCOL",
}

Respond = Callable[[str, list[tuple[str, str]]], object]


def log(status: str, user: str, environ: dict) -> None:
    print(status.split(maxsplit=1)[0], user, environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), flush=True)


def app(environ: dict, respond: Respond) -> Iterable[bytes]:
    if environ.get("HTTP_AUTHORIZATION") != EXPECTED:
        log("401", "-", environ)
        respond("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="dags"'), ("Content-Length", "0")])
        return [b""]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    env = {key: environ[source] for key, source in CGI.items() if source in environ}
    env |= {
        "GIT_PROJECT_ROOT": os.environ["GIT_PROJECT_ROOT"],
        "GIT_HTTP_EXPORT_ALL": "1",
        "REMOTE_USER": os.environ["GIT_USERNAME"],
        "CONTENT_LENGTH": str(len(body)),
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
    if done.stderr:
        print(done.stderr.decode(errors="replace"), file=sys.stderr, flush=True)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head.decode().split("\r\n") if line]
    status = next((value for name, value in headers if name.lower() == "status"), "200 OK")
    log(status, os.environ["GIT_USERNAME"], environ)
    respond(status, [(name, value) for name, value in headers if name.lower() != "status"])
    return [payload]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """app() logs each request with its user instead."""


def mirror(url: str) -> None:
    repository = os.path.join(os.environ["GIT_PROJECT_ROOT"], "dags.git")
    subprocess.run(["git", "clone", "--quiet", "--mirror", url, repository], check=True)
    subprocess.run(["git", "--git-dir", repository, "config", "uploadpack.allowFilter", "true"], check=True)


if __name__ == "__main__":
    mirror(os.environ["GIT_MIRROR_OF"])
    make_server("0.0.0.0", int(sys.argv[1]), app, server_class=Server, handler_class=QuietHandler).serve_forever()
