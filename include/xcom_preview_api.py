"""The XCom preview's FastAPI app, mounted by the api-server under /xcom-preview (include/plugins/xcom_preview.py
lists the endpoints). Imported by the api-server only: it needs Airflow's API modules."""

from __future__ import annotations

import json
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy import select

from include import xcom_preview, xcom_preview_page
from include.azblob_xcom_backend import PREVIEW_MAX_ROWS, AzBlobXComError, XComBlobNotFoundError

# No docs pages: the API's own /docs describes Airflow's API, and these would be served without a sign-in.
app = FastAPI(title="XCom preview", docs_url=None, redoc_url=None, openapi_url=None)
# May the caller read this DAG's XComs? Airflow's auth manager decides, from the dag_id query parameter.
READERS = [Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM))]
RETURN_VALUE = "return_value"


class Ids:
    """An XCom's ids from the query string; ``stored()`` reads its value as the metadata DB holds it."""

    def __init__(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: Annotated[int, Query(ge=-1)] = -1,
        key: str = RETURN_VALUE,
    ) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.key = dag_id, run_id, task_id, map_index, key

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id, "map_index": self.map_index,
                "key": self.key}  # fmt: skip

    def of_task(self) -> Any:
        return (
            XComModel.dag_id == self.dag_id,
            XComModel.run_id == self.run_id,
            XComModel.task_id == self.task_id,
            XComModel.map_index == self.map_index,
        )

    def stored(self, session: Any) -> Any:
        values = session.scalars(select(XComModel.value).where(*self.of_task(), XComModel.key == self.key)).all()
        if not values:
            raise HTTPException(404, f"No XCom {self.key!r} of {self.dag_id}.{self.task_id} in run {self.run_id} "
                                     f"(map_index {self.map_index}).")  # fmt: skip
        # JSON in a JSON column: a value the Execution API wrote arrives decoded, one from XComModel as text.
        return json.loads(values[0]) if isinstance(values[0], str) else values[0]


IdsDep = Annotated[Ids, Depends()]


def failed(err: Exception) -> HTTPException:
    """A reading error as the client sees it: the blob gone 404, any other about the blob 502, the wrong kind of
    value for the request (inline, not a table) 409."""
    if isinstance(err, XComBlobNotFoundError):
        return HTTPException(404, str(err))
    if isinstance(err, AzBlobXComError):
        return HTTPException(502, str(err))
    return HTTPException(409, str(err))


@app.get("/api/preview", dependencies=READERS)
def preview(
    ids: IdsDep, session: SessionDep, rows: Annotated[int | None, Query(ge=1, le=PREVIEW_MAX_ROWS)] = None
) -> dict[str, Any]:
    try:
        return xcom_preview.preview(ids.stored(session), rows).as_dict()
    except (AzBlobXComError, ValueError) as err:
        raise failed(err) from None


@app.get("/api/download", dependencies=READERS)
def download(ids: IdsDep, session: SessionDep, as_: Annotated[str, Query(alias="as")] = "stored") -> Any:
    if as_ not in ("stored", "csv"):
        raise HTTPException(422, f"as must be stored or csv, not {as_!r}")
    name = f"{ids.dag_id}.{ids.task_id}.{ids.key}" + (f".{ids.map_index}" if ids.map_index >= 0 else "")
    stored = ids.stored(session)
    try:
        if as_ == "csv":
            chunks = xcom_preview.csv_chunks(stored)
            first = next(chunks)  # errors (missing, resized, forged, not a table) before the response starts
            disposition = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
            return StreamingResponse(_prepend(first, chunks), media_type="text/csv", headers=disposition)
        ref, chunks = xcom_preview.blob_chunks(stored)
    except (AzBlobXComError, ValueError) as err:
        raise failed(err) from None
    extension = ref.blob_name.rsplit("/", 1)[-1].split(".", 1)[1]
    return StreamingResponse(
        chunks,
        media_type="application/vnd.apache.parquet" if ref.format == "parquet" else "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.{extension}"',
            "Content-Length": str(ref.size_bytes),
        },
    )


@app.get("/api/verify", dependencies=READERS)
def verify(ids: IdsDep, session: SessionDep) -> dict[str, Any]:
    try:
        return xcom_preview.verify(ids.stored(session))
    except (AzBlobXComError, ValueError) as err:
        raise failed(err) from None


class ViewIds(Ids):
    """The ids as the UI's tab link fills them in: map_index stays "{MAP_INDEX}" for a task that is not mapped, and
    no key names the task's return value (or its first key)."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: str = "-1", key: str = "") -> None:
        super().__init__(dag_id, run_id, task_id, int(map_index) if map_index.lstrip("-").isdigit() else -1, key)


@app.get("/view", dependencies=READERS, response_class=HTMLResponse)
def view(ids: Annotated[ViewIds, Depends()], session: SessionDep) -> HTMLResponse:
    keys = session.scalars(select(XComModel.key).where(*ids.of_task())).all()
    keys = sorted(keys, key=lambda key: (key != RETURN_VALUE, key))  # the return value first
    ids.key = ids.key or (keys[0] if keys else RETURN_VALUE)
    shown, error, status = None, None, 200
    try:
        shown = xcom_preview.preview(ids.stored(session)).as_dict()
    except HTTPException as err:
        error, status = err.detail, err.status_code
    except (AzBlobXComError, ValueError) as err:
        failure = failed(err)
        error, status = failure.detail, failure.status_code
    return HTMLResponse(xcom_preview_page.page(ids.as_dict(), keys, shown, error), status_code=status)


def _prepend(first: str, rest: Any) -> Any:
    yield first
    yield from rest
