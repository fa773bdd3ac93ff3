"""The component table (chart/templates/_components.tpl) is the one home of "who gets what": every Airflow pod's
environment, DAG files and ServiceAccount follow its entry, and no other template decides by a component's name."""

from __future__ import annotations

import re

import pytest

from tests.chart.conftest import CASES, MATRIX, case_id, render_case
from tests.support.helm import CHART, Manifest, env_of, render_helper

FLAG_ENV = {
    "db": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "apiSecret": "AIRFLOW__API__SECRET_KEY",
    "jwt": "AIRFLOW__API_AUTH__JWT_SECRET",
}


def _airflow_pods(manifest: Manifest) -> list[tuple[str, str, dict]]:
    """(where, component label, pod spec) of every pod running the Airflow image."""
    found = []
    for where, spec in manifest.pod_specs():
        if where == "worker pod template":
            found.append((where, "worker", spec))
            continue
        kind, name = where.split("/", 1)
        obj = manifest.get(kind, name)
        template = {
            "Deployment": lambda o: o["spec"]["template"],
            "Job": lambda o: o["spec"]["template"],
            "CronJob": lambda o: o["spec"]["jobTemplate"]["spec"]["template"],
            "Pod": lambda o: o,
        }.get(kind)
        if template and any(c["name"] != "git-sync" and "airflow" in c["image"] for c in spec["containers"]):
            found.append((where, template(obj)["metadata"]["labels"]["app.kubernetes.io/component"], spec))
    return found


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_airflow_pod_gets_exactly_what_its_table_entry_says(case: tuple[str | None, str]) -> None:
    profile, name = case
    table = render_helper("airflow-azblob.components", MATRIX[name], profile=profile)
    manifest = render_case(case)
    git_sync_mode = manifest.airflow_config()["core"]["dags_folder"].startswith("/git/")
    for where, component, spec in _airflow_pods(manifest):
        entry = table[component]
        main = spec["containers"][0]
        env = env_of(main)
        for flag, variable in FLAG_ENV.items():
            assert (variable in env) == bool(entry.get(flag)), f"{where}: {variable} vs {flag}={entry.get(flag)}"
        clones = any(c["name"] == "git-sync-init" for c in spec.get("initContainers", []))
        assert clones == (git_sync_mode and bool(entry.get("dags"))), f"{where}: git-sync clone {clones}"
        owner = table[entry["serviceAccount"]]
        assert spec["serviceAccountName"].endswith(entry["serviceAccount"]), (where, spec["serviceAccountName"])
        assert owner["serviceAccount"] == entry["serviceAccount"], f"{where}: its ServiceAccount's owner has none"


def test_no_template_but_the_table_decides_by_a_component_name() -> None:
    names = "api-server|scheduler|dag-processor|triggerer|worker|db-migrate|db-cleanup|create-containers"
    decides = re.compile(rf'(eq|has|ne) \.component|list "({names})"')
    for path in sorted((CHART / "templates").rglob("*")):
        if path.is_file() and path.name != "_components.tpl":
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not decides.search(line), f"{path.relative_to(CHART)}:{number}: {line.strip()}"
