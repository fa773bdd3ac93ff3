"""The backend's options have one table, in docs/xcom-backend.md; the code, the chart's defaults and the table
must name the same options with the same defaults."""

from __future__ import annotations

import dataclasses
import re

import yaml

from include.azblob_xcom_backend import BackendConfig
from scripts.paths import ROOT

DOC = ROOT / "docs" / "xcom-backend.md"
# The chart's value for each option ([azblob_xcom] conn_id is the Azure connection every Blob user shares).
CHART_VALUE = {
    "conn_id": ("azure", "connection", "id"),
    "container": ("xcom", "container"),
    "prefix": ("xcom", "prefix"),
    "threshold": ("xcom", "threshold"),
    "compression": ("xcom", "compression"),
    "max_concurrency": ("xcom", "maxConcurrency"),
    "retries": ("xcom", "retries"),
    "preview_rows": ("xcom", "previewRows"),
}


def documented_options() -> dict[str, str]:
    """option -> default, from the table under the doc's Configuration heading."""
    section = DOC.read_text().split("## Configuration: `[azblob_xcom]`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (`[^`]*`|\(empty\)) \|", section, flags=re.MULTILINE)
    return {name: "" if default == "(empty)" else default.strip("`") for name, default in rows}


def code_defaults() -> dict[str, str]:
    return {field.name: str(field.default) for field in dataclasses.fields(BackendConfig)}


def test_the_doc_table_lists_every_option_of_the_code_with_its_default():
    assert documented_options() == code_defaults()


def test_the_charts_defaults_are_the_codes_defaults():
    values = yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())

    def chart_default(path: tuple[str, ...]) -> str:
        found = values
        for key in path:
            found = found[key]
        return str(found)

    assert {name: chart_default(path) for name, path in CHART_VALUE.items()} == code_defaults()


def test_every_other_place_links_to_the_table_instead_of_copying_it():
    for path in (ROOT / "README.md", ROOT / "include" / "azblob_xcom_backend.py"):
        text = path.read_text()
        assert "docs/xcom-backend.md" in text, path
        assert "| `max_concurrency` |" not in text, f"{path} copies the table"
        assert "max_concurrency    4" not in text, f"{path} copies the table"
