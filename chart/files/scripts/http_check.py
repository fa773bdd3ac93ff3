"""helm test: GET a health endpoint and require HTTP 200 and the expected JSON fields.

argv: URL, then key=value pairs the JSON must contain (dotted keys reach into objects).
"""

import json
import sys
import time
import urllib.request

url, expected = sys.argv[1], dict(arg.split("=", 1) for arg in sys.argv[2:])
last_error = ""
for _attempt in range(10):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        break
    except (OSError, ValueError) as err:
        last_error = str(err)
        time.sleep(3)
else:
    sys.exit(f"{url} did not answer with JSON: {last_error}")
for dotted, want in expected.items():
    value = body
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if str(value) != want:
        sys.exit(f"{url}: {dotted} is {value!r}, expected {want!r}; body: {json.dumps(body)[:500]}")
print(f"{url}: ok", flush=True)
