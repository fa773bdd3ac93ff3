"""The XCom preview, served by the api-server under /xcom-preview (include/xcom_preview.py does the reading):

    GET /xcom-preview/api/preview?dag_id=&run_id=&task_id=[&map_index=-1][&key=return_value][&rows=]
        the reference, schema and first rows ([azblob_xcom] preview_rows, or rows=, at most 1,000; or the first
        64 KiB of a JSON value), as JSON
    GET /xcom-preview/api/download?<the same ids>[&as=stored|csv]
        the blob streamed as stored (Parquet or compressed JSON), or a Parquet blob's DataFrame as CSV
    GET /xcom-preview/api/verify?<the same ids>
        the whole blob read and its SHA-256 compared with the reference's
    GET /xcom-preview/view?<the same ids>
        the preview as an HTML page (include/xcom_preview_page.py), with the task's other keys and the downloads:
        the "XCom preview" tab of a task instance in the UI (an external view, destination task_instance)

The client names an XCom by its ids, never by a blob path: the row is read from the metadata DB, and a reference
outside the backend's container and prefix is refused. Every endpoint asks Airflow's auth manager whether the caller
may read that DAG's XComs (the UI's session cookie or a Bearer token): none -> 401, not allowed -> 403. Loaded from
``[core] plugins_folder`` like failure_alerts.py; the FastAPI app (include/xcom_preview_api.py) is imported when the
api-server asks for it, so other components only import this file.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/xcom-preview"


def base_path() -> str:
    """The path the api-server is served under ([api] base_url's, e.g. /airflow; empty at the root)."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")


class XComPreviewPlugin(AirflowPlugin):
    name = "xcom_preview"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # built on first use: only the api-server asks
        if not hasattr(self, "_apps"):
            from include.xcom_preview_api import app

            self._apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "XCom preview"}]
        return self._apps

    @property
    def external_views(self) -> list[dict[str, Any]]:
        """A tab on each task instance's page: the UI fills in the ids and shows the page in an iframe."""
        ids = "dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
        return [
            {
                "name": "XCom preview",
                "href": f"{base_path()}{URL_PREFIX}/view?{ids}",
                "destination": "task_instance",
                "url_route": "xcom-preview",
            }
        ]
