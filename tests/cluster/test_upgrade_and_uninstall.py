"""Day-2 on the local cluster: `helm upgrade` with no value changed restarts no pod and changes no Secret; `helm
uninstall` leaves exactly what docs/chart.md says it keeps. (Last in this folder: it uninstalls the release.)"""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.conftest import Deployment
from tests.support.cluster import PROFILES, RELEASE
from tests.support.helm import CHART, FULLNAME, ROOT

pytestmark = pytest.mark.slow
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
KEPT_KINDS = "secrets,persistentvolumeclaims,configmaps,services,serviceaccounts,deployments,statefulsets,jobs,pods"


def running_pods(deployment: Deployment) -> dict[str, str]:
    """uid -> name of the release's long-running pods (not the pods of its per-revision Jobs)."""
    pods = deployment.cluster.get("pods", "--selector", SELECTOR)["items"]
    return {
        pod["metadata"]["uid"]: pod["metadata"]["name"]
        for pod in pods
        if not any(owner["kind"] == "Job" for owner in pod["metadata"].get("ownerReferences", []))
    }


def secrets(deployment: Deployment) -> dict[str, tuple[dict, str]]:
    items = deployment.cluster.get("secrets", "--selector", SELECTOR)["items"]
    return {s["metadata"]["name"]: (s["data"], s["metadata"]["resourceVersion"]) for s in items}


def test_helm_upgrade_with_no_value_changed_restarts_no_pod_and_changes_no_secret(deployment: Deployment) -> None:
    pods_before, secrets_before = running_pods(deployment), secrets(deployment)
    values = [arg for profile in PROFILES for arg in ("--values", str(ROOT / profile))]
    deployment.cluster.helm("upgrade", RELEASE, str(CHART), *values, "--wait", "--timeout", "10m")
    assert running_pods(deployment) == pods_before
    assert secrets(deployment) == secrets_before


def documented_kept() -> set[tuple[str, str]]:
    """(kind, name) rows of the table under "What `helm uninstall` keeps" in docs/chart.md."""
    text = (ROOT / "docs" / "chart.md").read_text()
    section = text.split("## What `helm uninstall` keeps", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \|", section, re.MULTILINE)
    return {(kind, name.replace("<fullname>", FULLNAME)) for kind, name in rows}


def test_helm_uninstall_leaves_only_what_the_docs_say_is_kept(deployment: Deployment) -> None:
    assert len(documented_kept()) == 7
    deployment.cluster.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
    deadline = time.monotonic() + 120
    while True:
        left = deployment.cluster.get(KEPT_KINDS, "--selector", SELECTOR)["items"]
        remaining = {(item["kind"], item["metadata"]["name"]) for item in left}
        if not any(kind == "Pod" for kind, _ in remaining) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert remaining == documented_kept()
    assert deployment.cluster.helm("list", "--all").stdout.count(RELEASE) == 0
