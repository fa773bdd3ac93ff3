"""The project's own metrics have one list, include/metrics.py's METRICS, and one table, in docs/operations.md: the
two must name the same metrics (as Prometheus shows them through the statsd_exporter), types, labels and meanings."""

from __future__ import annotations

import re

from include.metrics import METRICS
from scripts.paths import ROOT

DOC = ROOT / "docs" / "operations.md"
TYPES = {"counter": "counter", "timer": "summary (seconds)", "gauge": "gauge"}


def documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    section = DOC.read_text().split("### The project's own metrics", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(airflow_\w+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$", section, flags=re.MULTILINE)
    return {
        name: (kind.strip(), tuple(re.findall(r"`(\w+)`", labels)), meaning.strip())
        for name, kind, labels, meaning in rows
    }


def test_the_doc_table_is_the_metric_list() -> None:
    listed = {
        "airflow_" + name.replace(".", "_"): (TYPES[metric.kind], metric.tags, metric.meaning)
        for name, metric in METRICS.items()
    }
    assert documented() == listed
