"""Validate an object of a CustomResourceDefinition's kind (the chart's HTTPRoute) against that CRD's own schema, the
way the apiserver would, offline: the Gateway API's standard CRDs that scripts/bootstrap helm installs.

Strict like kubernetes-validate's strict mode: a field the schema does not list is an error (the apiserver would
silently prune it). CEL rules (x-kubernetes-validations) are not evaluated here; the local cluster's apiserver
checks those with a server-side dry run (tests/cluster).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from scripts.paths import GATEWAY_API_CRDS, ROOT

CRD_KINDS = {"HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml"}


def crd_path(kind: str):
    path = GATEWAY_API_CRDS / CRD_KINDS[kind]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `{ROOT / 'scripts' / 'bootstrap'} helm`")
    return path


def _closed(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever it lists properties and keeps no unknown fields."""
    if isinstance(schema, dict):
        out = {key: _closed(value) for key, value in schema.items()}
        keeps_unknown = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in out and not keeps_unknown:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@functools.cache
def _validator(kind: str, version: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(crd_path(kind).read_text())
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in served:
        raise AssertionError(f"{kind} {version} is not served by the CRD (it serves {sorted(served)})")
    schema = _closed(served[version]["schema"]["openAPIV3Schema"])
    # metadata is the apiserver's ObjectMeta, not described by the CRD.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def validate(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when ``obj`` does not fit its CRD's schema."""
    version = obj["apiVersion"].rsplit("/", 1)[-1]
    _validator(obj["kind"], version).validate(obj)
