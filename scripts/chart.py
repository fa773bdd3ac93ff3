"""``helm template`` of the repository's chart with the pinned helm (scripts/paths.py's HELM): one way to render it.

The local stack renders its airflow.cfg with it (scripts/devstack/stack.py), scripts/lifecycle_policy.py the blob
locations and the db-cleanup CronJob, and the tests' renderer (tests/support/helm.py) runs helm through
:func:`run_helm`. No cluster is needed; ``yaml`` is imported only when a render is parsed.
"""

from __future__ import annotations

import configparser
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.paths import HELM, ROOT

CHART = ROOT / "chart"
RELEASE = "airflow"


class HelmError(Exception):
    """helm exited non-zero; ``stderr`` holds its message (a chart ``fail`` ends up here)."""

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


def run_helm(*args: str) -> str:
    """helm's output for ``args``; raises :class:`HelmError` with helm's message when it fails."""
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HelmError(list(args), proc.stderr)
    return proc.stdout


def objects(text: str) -> list[dict[str, Any]]:
    """The objects of a rendered manifest, in order (empty documents dropped)."""
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def template(
    values: Sequence[Path] = (), *, set_strings: Mapping[str, str] | None = None, show_only: str | None = None
) -> list[dict[str, Any]]:
    """The chart's objects for these values files and ``--set-string`` overrides (optionally one template only)."""
    args = ["template", RELEASE, str(CHART)]
    if show_only:
        args += ["--show-only", show_only]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (set_strings or {}).items():
        args += ["--set-string", f"{key}={value}"]
    return objects(run_helm(*args))


def airflow_cfg(rendered: list[dict[str, Any]]) -> configparser.ConfigParser:
    """The airflow.cfg of a render (the ConfigMap that holds it), keys in the case the chart renders them."""
    configmap = next(o for o in rendered if o["kind"] == "ConfigMap" and "airflow.cfg" in o.get("data", {}))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.optionxform = str  # keep key case as rendered
    cfg.read_string(configmap["data"]["airflow.cfg"])
    return cfg
