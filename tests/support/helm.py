"""Render the chart with the real helm binary and query the result: the chart tests' one way to run helm.

``render(values, set_values)`` runs ``helm template`` (no cluster needed) and returns a :class:`Manifest`, the
rendered objects indexed by kind and name with jmespath helpers. Renders are cached per values combination, so a
test session renders each combination once. helm is the repository's pinned build (``.tools/bin/helm``), run
through scripts/chart.py; when it is missing, ``scripts/bootstrap helm`` builds it from the Go module proxy.
"""

from __future__ import annotations

import configparser
import functools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
import yaml

from scripts import chart
from scripts.chart import CHART, RELEASE, HelmError
from scripts.paths import HELM, LOCAL_CLUSTER_VALUES, ROOT

PROFILES = ROOT / "config" / "profiles"
NAMESPACE = "airflow"
FULLNAME = "airflow-airflow-azblob"
# The Kubernetes version every render targets and every object is validated against (the chart's minimum).
KUBE_VERSION = "1.30.0"


def helm_binary() -> Path:
    """The pinned helm, built by ``scripts/bootstrap helm`` on first use."""
    if not HELM.exists():
        subprocess.run([str(ROOT / "scripts" / "bootstrap"), "helm"], check=True)
    return HELM


def run_helm(*args: str) -> str:
    helm_binary()
    return chart.run_helm(*args)


def _set_args(set_values: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in set_values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


@dataclass
class Manifest:
    """Rendered objects of one ``helm template``, in order, with lookups by kind and name."""

    objects: list[dict[str, Any]]
    by_key: dict[tuple[str, str], dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {(obj["kind"], obj["metadata"]["name"]): obj for obj in self.objects}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The object ``kind``/``name``; ``name`` may omit the ``<fullname>-`` prefix."""
        for candidate in (name, f"{FULLNAME}-{name}"):
            if (kind, candidate) in self.by_key:
                return self.by_key[(kind, candidate)]
        raise KeyError(f"no {kind} {name!r}; rendered: {sorted(self.by_key)}")

    def has(self, kind: str, name: str) -> bool:
        try:
            self.get(kind, name)
        except KeyError:
            return False
        return True

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def query(self, expression: str) -> Any:
        """jmespath over the list of objects, e.g. ``[?kind=='Deployment'].metadata.name``."""
        return jmespath.search(expression, self.objects)

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, pod spec) of every workload (CronJobs included), test Pod, and the worker pod template."""
        for obj in self.objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind == "StatefulSet":
                # Claims of volumeClaimTemplates are volumes of the pod too.
                spec = dict(obj["spec"]["template"]["spec"])
                claims = [{"name": c["metadata"]["name"]} for c in obj["spec"].get("volumeClaimTemplates", [])]
                spec["volumes"] = [*spec.get("volumes", []), *claims]
                yield f"{kind}/{name}", spec
            elif kind in ("Deployment", "Job"):
                yield f"{kind}/{name}", obj["spec"]["template"]["spec"]
            elif kind == "CronJob":
                yield f"{kind}/{name}", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            elif kind == "Pod":
                yield f"Pod/{name}", obj["spec"]
        if self.has("ConfigMap", "pod-template"):
            yield "worker pod template", self.worker_pod_template()["spec"]

    def airflow_cfg(self) -> str:
        return self.get("ConfigMap", "config")["data"]["airflow.cfg"]

    def airflow_config(self) -> configparser.ConfigParser:
        """airflow.cfg parsed (interpolation off, as Airflow reads it), through scripts/chart.py's one parser."""
        return chart.airflow_cfg(self.objects)

    def worker_pod_template(self) -> dict[str, Any]:
        return yaml.safe_load(self.get("ConfigMap", "pod-template")["data"]["pod_template_file.yaml"])


def parse(text: str) -> Manifest:
    return Manifest(chart.objects(text))


def _freeze(set_values: Mapping[str, Any] | None) -> str:
    return json.dumps(set_values or {}, sort_keys=True)


def _profiles(profile: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """One profile name, or several layered in order (e.g. ("kind", "local-cluster"))."""
    return (profile,) if isinstance(profile, str) else tuple(profile or ())


def profile_file(name: str) -> Path:
    """A profile of config/profiles/ by name, or "local-cluster": the local cluster's layer on the kind profile."""
    return LOCAL_CLUSTER_VALUES if name == "local-cluster" else PROFILES / f"{name}.yaml"


def profile_args(profile: str | tuple[str, ...] | None) -> list[str]:
    return [arg for name in _profiles(profile) for arg in ("--values", str(profile_file(name)))]


@functools.cache
def _render_cached(
    profile: tuple[str, ...], frozen: str, show_only: str | None, kube_version: str = KUBE_VERSION
) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version]
    args += profile_args(profile)
    args += _set_args(json.loads(frozen))
    if show_only:
        args += ["--show-only", show_only]
    return run_helm(*args)


def render(
    set_values: Mapping[str, Any] | None = None,
    *,
    profile: str | tuple[str, ...] | None = None,
    show_only: str | None = None,
    kube_version: str = KUBE_VERSION,
) -> Manifest:
    """Render the chart (optionally over profiles of config/profiles/) with ``--set-json`` overrides, for the
    Kubernetes ``kube_version`` (default: the chart's minimum)."""
    return parse(_render_cached(_profiles(profile), _freeze(set_values), show_only, kube_version))


def render_fresh(set_values: Mapping[str, Any] | None = None, *, profile: str | None = None) -> str:
    """The text of a new `helm template` run (never the cached one), to compare two renders."""
    return _render_cached.__wrapped__(_profiles(profile), _freeze(set_values), None)


def render_error(set_values: Mapping[str, Any] | None = None, *, profile: str | None = None) -> str:
    """The error helm prints for a render that must fail (raises AssertionError when it renders)."""
    try:
        _render_cached(_profiles(profile), _freeze(set_values), None)
    except HelmError as err:
        return err.stderr
    raise AssertionError(f"helm rendered values {set_values!r} (profile {profile}) that should fail")


@functools.cache
def _probe_chart(what: str) -> Path:
    """A copy of the chart with one more template, a ConfigMap ``probe`` whose data.text is ``what`` rendered (a
    template text such as ``{{ include "airflow-azblob.ownedConfig" . }}``): how a test sees NOTES.txt (helm
    template skips it) or a helper's output."""
    copy = Path(tempfile.mkdtemp(prefix="chart-probe-")) / "chart"
    shutil.copytree(CHART, copy)
    (copy / "files" / "probe.tpl").write_text(what)
    (copy / "templates" / "zz-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n"
        'data:\n  text: {{ tpl (.Files.Get "files/probe.tpl") . | toJson }}\n'
    )
    return copy


def render_probe(
    what: str, set_values: Mapping[str, Any] | None = None, *, profile: str | tuple[str, ...] | None = None
) -> str:
    """``what`` (template text, with the chart's helpers) rendered for these values."""
    args = ["template", RELEASE, str(_probe_chart(what)), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    args += profile_args(profile)
    args += [*_set_args(set_values or {}), "--show-only", "templates/zz-probe.yaml"]
    return parse(run_helm(*args)).get("ConfigMap", "probe")["data"]["text"]


def render_notes(set_values: Mapping[str, Any] | None = None, *, profile: str | None = None) -> str:
    """NOTES.txt as helm install would print it."""
    return render_probe((CHART / "templates" / "NOTES.txt").read_text(), set_values, profile=profile)


def render_helper(name: str, set_values: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """The YAML a helper of the chart returns (e.g. ``airflow-azblob.ownedConfig``), parsed."""
    return yaml.safe_load(render_probe(f'{{{{ include "{name}" . }}}}', set_values, **kwargs))


def lint(*, profile: str | None = None) -> str:
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    args += profile_args(profile)
    return run_helm(*args)


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's env as {name: value or valueFrom}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def all_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]
