"""The airflow.cfg keys the chart owns: one table (airflow-azblob.ownedConfig in chart/templates/_config.tpl) that
both renders them and refuses them in `config:`. A key the chart renders outside that table, or a table key that a
`config:` value could silently override, fails here."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.conftest import CASES, MATRIX, case_id, render_case
from tests.support.helm import CHART, profile_file, render, render_error, render_helper

OWNED = render_helper("airflow-azblob.ownedConfig")
OWNED_KEYS = [(section, key) for section, keys in OWNED.items() for key in keys]
USER_CONFIG = yaml.safe_load((CHART / "values.yaml").read_text())["config"]


def test_the_table_owns_the_keys_that_were_silently_overridden() -> None:
    # The drift this table replaced: these were computed but not refused, so a config: value lost without a word.
    for section, key in [
        ("azblob_xcom", "prefix"),
        ("azblob_xcom", "threshold"),
        ("azblob_xcom", "compression"),
        ("azblob_xcom", "max_concurrency"),
        ("azblob_xcom", "retries"),
        ("logging", "base_log_folder"),
        ("kubernetes_executor", "worker_container_repository"),
        ("kubernetes_executor", "worker_container_tag"),
    ]:
        assert (section, key) in OWNED_KEYS


@pytest.mark.parametrize(("section", "key"), OWNED_KEYS, ids=[f"{s}.{k}" for s, k in OWNED_KEYS])
def test_every_owned_key_set_in_config_fails_naming_the_value_to_set(section: str, key: str) -> None:
    error = render_error({"config": {section: {key: "1000"}}})
    expected = f"config.{section}.{key} is computed by the chart: remove it from config and set "
    assert expected + OWNED[section][key]["set"] + " instead" in error, error


def test_a_user_value_for_the_backend_threshold_is_refused_not_overridden() -> None:
    error = render_error({"config": {"azblob_xcom": {"threshold": 1000}}})
    assert "set xcom.threshold instead" in error, error
    assert render({"xcom.threshold": 1000}).airflow_config()["azblob_xcom"]["threshold"] == "1000"


def _config_values(profile: str | None, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `config:` block of values.yaml, the profile and the case, merged as helm merges them."""
    merged: dict[str, dict[str, Any]] = {}
    layers = [USER_CONFIG, yaml.safe_load(profile_file(profile).read_text()) if profile else {}, values]
    for layer in [USER_CONFIG, *(layer.get("config", {}) for layer in layers[1:])]:
        for section, keys in (layer or {}).items():
            merged.setdefault(section, {}).update(keys or {})
    return merged


def _rendered_keys(case: tuple[str | None, str]) -> dict[tuple[str, str], str]:
    parser = render_case(case).airflow_config()
    return {(section, key): parser[section][key] for section in parser.sections() for key in parser[section]}


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_rendered_key_comes_from_config_or_the_owned_table(case: tuple[str | None, str]) -> None:
    profile, name = case
    owned: dict[str, Any] = render_helper("airflow-azblob.ownedConfig", MATRIX[name], profile=profile)
    user = _config_values(profile, MATRIX[name])
    rendered = _rendered_keys(case)
    for section, key in rendered:
        entry = owned.get(section, {}).get(key)
        if entry is None:
            assert key in user.get(section, {}), f"[{section}] {key} is rendered but neither in config: nor owned"
            continue
        assert "env" not in entry, f"[{section}] {key} reaches pods from a Secret, yet airflow.cfg has it"
        assert entry["when"], f"[{section}] {key} is rendered although its table entry says not for these values"
    for section, keys in owned.items():
        for key, entry in keys.items():
            when = bool(entry.get("when"))
            assert ((section, key) in rendered) == when, f"[{section}] {key}: when={when}"


def test_every_owned_key_reaching_pods_from_a_secret_is_an_env_variable_of_some_pod() -> None:
    manifest = render(
        {"alerts.webhook.existingSecret": "hook", "postgresql.enabled": False, "database.existingSecret": "db"}
        | {"database.existingSecretAsyncKey": "async", "auth.manager": "fab", "auth.oidc.enabled": True}
        | {"auth.oidc.clientId": "app", "auth.oidc.clientSecret.existingSecret": "oidc", "auth.oidc.tenantId": "t"}
    )
    env_names = {
        env["name"]
        for _, spec in manifest.pod_specs()
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        for env in container.get("env", [])
    }
    for section, keys in OWNED.items():
        for key, entry in keys.items():
            if "env" in entry:
                assert entry["env"] == f"AIRFLOW__{section.upper()}__{key.upper()}"
                assert entry["env"] in env_names, f"[{section}] {key}: no pod gets {entry['env']}"
