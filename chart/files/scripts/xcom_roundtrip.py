"""helm test: a DataFrame round trip through the configured XCom backend, from inside the cluster.

Imports [core] xcom_backend exactly as a task would, pushes a DataFrame larger than the threshold (so it must go
to Blob), checks that the DB value is a reference, reads it back, compares, and purges the blob.
"""

import importlib
import sys
from types import SimpleNamespace

import pandas as pd
from airflow.configuration import conf

path = conf.get("core", "xcom_backend")
module_name, _, class_name = path.rpartition(".")
backend = getattr(importlib.import_module(module_name), class_name)
threshold = conf.getint("azblob_xcom", "threshold", fallback=65536)
rows = max(1000, threshold // 4)
frame = pd.DataFrame({"n": range(rows), "text": [f"row {i}" for i in range(rows)]})
stored = backend.serialize_value(
    frame, key="return_value", task_id="roundtrip", dag_id="helm_test", run_id="helm_test", map_index=-1
)
if not (isinstance(stored, dict) and "uri" in stored):
    sys.exit(f"{path} kept a {rows}-row DataFrame inline instead of writing it to Blob: {str(stored)[:200]}")
print(f"stored {rows} rows at {stored['uri']}", flush=True)
back = backend.deserialize_value(SimpleNamespace(value=stored))
pd.testing.assert_frame_equal(back, frame)
backend.purge(SimpleNamespace(value=stored))
print(f"XCom round trip through {path}: ok", flush=True)
