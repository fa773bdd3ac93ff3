"""A webhook receiver for the failure-alert tests: it records the JSON body of every POST, answers with a status the
test chooses, and returns what it recorded on ``GET /received``.

Used in the test process (``with Receiver() as receiver: ... receiver.received``) and, unchanged, as a pod in the
local cluster (``python webhook_receiver.py 8080``; the Airflow image has all it needs).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def titles(messages: list[dict[str, Any]]) -> list[str]:
    """The first lines of the alert messages received (Slack's ``text``), sorted."""
    return sorted(message["text"].splitlines()[0] for message in messages)


class RecordingServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], status: int = 200, delay: float = 0.0) -> None:
        super().__init__(address, Handler)
        self.status = status
        self.delay = delay
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []


class Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.received.append({"path": self.path, "body": json.loads(body)})
        time.sleep(self.server.delay)
        self.answer(self.server.status, b"recorded")

    def do_GET(self) -> None:
        if self.path != "/received":
            self.answer(404, b"only GET /received")
            return
        with self.server.lock:
            self.answer(200, json.dumps(self.server.received).encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # one line per request on stderr, as kubectl logs show
        sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")


class Receiver:
    """The receiver on a free loopback port, in a thread, for the length of a ``with`` block."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.server = RecordingServer(("127.0.0.1", 0), status, delay)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"

    @property
    def received(self) -> list[dict[str, Any]]:
        with self.server.lock:
            return [request["body"] for request in self.server.received]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


if __name__ == "__main__":
    RecordingServer(("0.0.0.0", int(sys.argv[1]))).serve_forever()
