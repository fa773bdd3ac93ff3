"""Where the checkout keeps things: its root, and the pinned tools scripts/bootstrap installs into it.

Scripts and tests import these (``from scripts.paths import ROOT, HELM``) instead of working out the root from
their own location. A script run as a file (``.venv/bin/python scripts/x.py``) first puts the checkout on
``sys.path``, so that ``scripts`` is importable; under pytest, pyproject.toml's ``pythonpath`` does that.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# scripts/bootstrap helm: the helm every script and test renders or installs the chart with.
HELM = ROOT / ".tools" / "bin" / "helm"
# The local cluster (make cluster-up, make images): Kubernetes as processes of this machine and the stand-in images,
# for machines that reach no image registry; CI runs the chart there. Its entry points, component configuration,
# stand-in Dockerfiles and the values it layers on config/profiles/kind.yaml all live in this one folder.
LOCAL_CLUSTER = ROOT / "scripts" / "localcluster"
CLUSTER_SCRIPT = LOCAL_CLUSTER / "cluster"
IMAGES_SCRIPT = LOCAL_CLUSTER / "images"
LOCAL_CLUSTER_VALUES = LOCAL_CLUSTER / "values.yaml"
# The values files of the release on the local cluster, in helm's order (scripts/deploy's default there).
LOCAL_CLUSTER_PROFILES = (ROOT / "config" / "profiles" / "kind.yaml", LOCAL_CLUSTER_VALUES)
# The go.mod that pins the Kubernetes binaries scripts/bootstrap builds.
KUBERNETES_MODULE = LOCAL_CLUSTER / "config" / "kubernetes"
# scripts/bootstrap helm: the Gateway API's standard CRDs (the chart's HTTPRoute is checked against them).
GATEWAY_API_CRDS = ROOT / ".tools" / "gateway-api"
# scripts/bootstrap cluster: the OpenID Connect provider tests/cluster/test_sign_in_with_oidc.py signs in with.
OIDC_PROVIDER = ROOT / ".tools" / "oidc-provider" / "server"
# scripts/bootstrap cluster: the Prometheus server tests/cluster/test_metrics.py scrapes the release with.
PROMETHEUS = ROOT / ".tools" / "prometheus" / "prometheus"
# scripts/bootstrap cluster: kube-apiserver, kubelet, kubectl, CoreDNS, ... of the local cluster.
CLUSTER_BIN = ROOT / ".tools" / "cluster" / "bin"
# scripts/bootstrap node: Azurite's Blob service (package.json pins it).
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
