"""Create the Blob containers Airflow needs (logs, XComs) through the Airflow connection; idempotent.

Run by the create-containers Job with BLOB_CONN_ID (an Airflow connection id) and BLOB_CONTAINERS (comma
separated). Retries until the storage answers, because Azurite may still be starting.
"""

import os
import sys
import time

from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.core.exceptions import AzureError, ResourceExistsError

conn_id = os.environ["BLOB_CONN_ID"]
containers = [name for name in os.environ["BLOB_CONTAINERS"].split(",") if name]
deadline = time.monotonic() + float(os.environ.get("BLOB_WAIT_SECONDS", "300"))
client = WasbHook(wasb_conn_id=conn_id).get_conn()
for name in containers:
    while True:
        try:
            client.create_container(name)
            print(f"created container {name}", flush=True)
            break
        except ResourceExistsError:
            print(f"container {name} already exists", flush=True)
            break
        except AzureError as err:
            if time.monotonic() > deadline:
                sys.exit(f"could not create container {name} with connection {conn_id}: {err}")
            print(f"storage not ready ({type(err).__name__}), retrying container {name}", flush=True)
            time.sleep(3)
