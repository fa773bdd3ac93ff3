"""The XCom preview as an HTML page: what the task instance's "XCom preview" tab shows in the Airflow UI (an iframe of
/xcom-preview/view, include/plugins/xcom_preview.py). Plain HTML with every value escaped; no script."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 12px; color: #1a202c; background: #fff; }
@media (prefers-color-scheme: dark) { body { color: #e2e8f0; background: #1a202c; } th { background: #2d3748; } }
h2 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #a0aec0; padding: 3px 8px; text-align: left; vertical-align: top; white-space: pre; }
th { background: #edf2f7; }
.error { color: #c53030; font-weight: 600; white-space: pre-wrap; }
.keys a, .downloads a { margin-right: 12px; }
pre { white-space: pre-wrap; font-size: 12px; }
"""


def page(ids: dict[str, Any], keys: list[str], shown: dict[str, Any] | None, error: str | None) -> str:
    """The page for the XCom ``ids`` (dag_id, run_id, task_id, map_index, key): links to the task's other keys, then
    the preview ``shown`` (include/xcom_preview.Preview.as_dict()) or the ``error`` that prevented it."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>XCom {escape(ids['key'])}</title>"]
    parts.append(f"<style>{STYLE}</style></head><body>")
    if len(keys) > 1:
        links = [
            f"<b>{escape(key)}</b>" if key == ids["key"] else f"<a href='view?{_query(ids, key=key)}'>{escape(key)}</a>"
            for key in keys
        ]
        parts.append(f"<div class='keys'>Keys: {' '.join(links)}</div>")
    if error:
        parts.append(f"<p class='error'>{escape(error)}</p>")
    elif shown is not None:
        parts.append(_body(ids, shown))
    parts.append("</body></html>")
    return "".join(parts)


def _body(ids: dict[str, Any], shown: dict[str, Any]) -> str:
    parts = []
    if ref := shown.get("reference"):
        fields = ["uri", "format", "compression", "size_bytes", "sha256", "type", "rows", "columns"]
        rows = "".join(f"<tr><th>{name}</th><td>{escape(str(ref[name]))}</td></tr>" for name in fields if name in ref)
        parts.append(f"<h2>Stored in Blob storage</h2><table>{rows}</table>")
        downloads = [f"<a href='api/download?{_query(ids)}'>Download as stored</a>"]
        if ref.get("format") == "parquet":
            downloads.append(f"<a href='api/download?{_query(ids, **{'as': 'csv'})}'>Download as CSV</a>")
        downloads.append(f"<a href='api/verify?{_query(ids)}'>Verify its checksum</a>")
        parts.append(f"<p class='downloads'>{''.join(downloads)}</p>")
    else:
        parts.append("<h2>Stored inline, in the metadata DB</h2>")
        if shown["kind"] != "table":  # nothing this page adds: Airflow's own XCom tab shows it as well
            parts.append(
                f"<p><a href='{escape(_airflow_xcom_tab(ids), quote=True)}' target='_top'>Airflow's XCom tab</a></p>"
            )
    if shown["kind"] == "table":
        schema = "".join(f"<tr><td>{escape(c['name'])}</td><td>{escape(c['dtype'])}</td></tr>" for c in shown["schema"])
        parts.append(f"<h2>Schema</h2><table><tr><th>column</th><th>dtype</th></tr>{schema}</table>")
        head = "".join(f"<th>{escape(name)}</th>" for name in [*shown["index"], *shown["columns"]])
        body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in shown["rows"])
        title = f"First {len(shown['rows']):,} of {shown['total_rows']:,} rows"
        parts.append(f"<h2>{title}</h2><table id='rows'><tr>{head}</tr>{body}</table>")
    else:
        cut = " (the first 64 KiB)" if shown["truncated"] else ""
        parts.append(f"<h2>Value{cut}</h2><pre>{escape(shown['text'] or '')}</pre>")
    return "".join(parts)


def _airflow_xcom_tab(ids: dict[str, Any]) -> str:
    """The UI's XCom tab of the same task instance, relative to this page (<base>/xcom-preview/view)."""
    dag, run, task = (quote(str(ids[name]), safe="") for name in ("dag_id", "run_id", "task_id"))
    mapped = f"/mapped/{ids['map_index']}" if ids["map_index"] >= 0 else ""
    return f"../dags/{dag}/runs/{run}/tasks/{task}{mapped}/xcom"


def _query(ids: dict[str, Any], **changes: Any) -> str:
    return escape(urlencode({**ids, **changes}), quote=True)
