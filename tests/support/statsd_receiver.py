"""A StatsD receiver for tests: a UDP socket on 127.0.0.1 that keeps every line Airflow's StatsD client sends to it,
with the InfluxDB-style tags (``name,tag=value:1|c``) the chart turns on (statsd_influxdb_enabled) parsed.

Start it, hand ``env()`` to the process under test (or set those variables in this one), read ``total()``.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

PREFIX = "airflow"  # the chart's [metrics] statsd_prefix


@dataclass(frozen=True)
class Sample:
    name: str  # without the prefix
    tags: dict[str, str]
    value: float
    kind: str  # c (counter), ms (timer), g (gauge)


def parse(line: str) -> Sample:
    """One StatsD line as Airflow sends it: ``<prefix>.<name>[,<tag>=<value>...]:<value>|<kind>[|@<rate>]``."""
    head, _, rest = line.rpartition(":")
    value, kind = rest.split("|")[:2]
    name, *tags = head.split(",")
    return Sample(name.removeprefix(f"{PREFIX}."), dict(tag.split("=", 1) for tag in tags), float(value), kind)


class StatsdReceiver:
    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)  # a blocked recv is not woken by close(): the thread checks _stop when idle
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._receive, name="statsd-receiver", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """The ``[metrics]`` settings that send here as the chart's metrics.enabled sends to its exporter."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
            "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
        }

    def _receive(self) -> None:
        while True:
            try:
                datagram = self._socket.recv(65535)
            except TimeoutError:  # nothing waiting: what was sent before close() has been read
                if self._stop.is_set():
                    return
                continue
            samples = [parse(line) for line in datagram.decode().splitlines() if line]
            with self._lock:
                self._samples.extend(samples)

    def samples(self, name: str, **tags: str) -> list[Sample]:
        """The samples of metric ``name`` (no prefix) whose tags include ``tags``."""
        with self._lock:
            return [s for s in self._samples if s.name == name and tags.items() <= s.tags.items()]

    def total(self, name: str, **tags: str) -> float:
        return sum(sample.value for sample in self.samples(name, **tags))

    def close(self) -> None:
        """Stop once every datagram already delivered is read (a finished sender's are: loopback delivers at send)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
