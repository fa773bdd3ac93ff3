"""NOTES.txt, values.schema.json and the two profiles."""

from __future__ import annotations

import json

import yaml

from scripts.paths import LOCAL_CLUSTER_VALUES
from tests.support.helm import CHART, FULLNAME, Manifest, render_notes


def test_notes_explain_how_to_reach_the_ui_and_read_the_login() -> None:
    notes = render_notes()
    assert f"port-forward svc/{FULLNAME}-api-server 8080:8080" in notes
    assert f"get secret {FULLNAME}-auth" in notes
    assert "passwords\\.json" in notes
    assert "Users: admin:admin" in notes
    assert "helm test airflow" in notes


def test_notes_warn_that_azurite_and_postgresql_are_for_development() -> None:
    notes = render_notes()
    assert "WARNING (development only): storage is Azurite" in notes
    assert "WARNING (development only): the metadata DB is the in-release PostgreSQL" in notes


def test_notes_of_the_aks_profile_carry_no_development_warnings() -> None:
    notes = render_notes(profile="aks-example")
    assert "development only" not in notes
    assert "git-sync from git@github.com:<org>/<repo>.git" in notes


def test_notes_follow_a_base_url_sub_path() -> None:
    assert "http://localhost:8080/team-a/" in render_notes(
        {"config": {"api": {"base_url": "https://x.example/team-a"}}}
    )


def _resolved(sub: dict, root: dict) -> dict:
    """A subschema with its `$ref` (a #/definitions/... pointer) followed; the keys beside the `$ref` win."""
    if "$ref" not in sub:
        return sub
    target = root
    for part in sub["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolved(target, root), **{k: v for k, v in sub.items() if k != "$ref"}}


def _walk(schema: dict, path: str = "", root: dict | None = None) -> list[tuple[str, dict]]:
    root = root or schema
    schema = _resolved(schema, root)
    found = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        found += _walk(sub, f"{path}.{key}" if path else key, root)
    return found


def _leaves(values: dict, path: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        is_free_form = key in {"resources", "nodeSelector", "affinity", "podAnnotations", "podLabels", "annotations"}
        if isinstance(value, dict) and value and here != "config" and not is_free_form:
            out += _leaves(value, here)
        else:
            out.append(here)
    return out


def test_values_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    described = {path for path, sub in _walk(schema) if sub.get("description")}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [leaf for leaf in _leaves(values) if leaf not in described]
    assert not missing, f"values without a schema description: {missing}"


def test_values_schema_is_strict_at_every_level_the_chart_owns() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose = [
        path or "<root>"
        for path, sub in _walk(schema)
        if "properties" in sub and sub.get("additionalProperties") is not False
    ]
    assert not loose


def test_kind_profile_uses_the_local_image_and_in_cluster_services(kind: Manifest) -> None:
    scheduler = kind.get("Deployment", "scheduler")["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["image"] == "airflow-azblob:local"
    assert scheduler["imagePullPolicy"] == "IfNotPresent"
    assert kind.has("Deployment", "azurite")
    assert kind.has("StatefulSet", "postgresql")


def test_the_local_cluster_differs_from_the_kind_profile_in_images_and_enforced_policies_only() -> None:
    """The cluster suite (scripts/localcluster/values.yaml on the kind profile) runs what `make kind-up` deploys,
    git-sync DAGs included, plus the NetworkPolicies the local cluster enforces."""
    local = yaml.safe_load(LOCAL_CLUSTER_VALUES.read_text())
    assert set(local) == {"images", "networkPolicies"}
    assert local["networkPolicies"]["enabled"] is True


def test_aks_profile_uses_the_account_with_workload_identity_and_an_external_db(aks: Manifest) -> None:
    assert not aks.has("Deployment", "azurite")
    assert not aks.has("StatefulSet", "postgresql")
    scheduler = aks.get("Deployment", "scheduler")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in scheduler["env"]}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == {
        "secretKeyRef": {"name": "airflow-metadata-db", "key": "connection"}
    }
    assert aks.get("ServiceAccount", "scheduler")["metadata"]["annotations"]["azure.workload.identity/client-id"]


def test_chart_metadata_pins_the_airflow_and_kubernetes_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["name"], chart["appVersion"], chart["kubeVersion"]) == ("airflow-azblob", "3.3.2", ">=1.30.0-0")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["images"]["airflow"]["tag"] == chart["appVersion"]
