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
# scripts/bootstrap helm: the Gateway API's standard CRDs (the chart's HTTPRoute is checked against them).
GATEWAY_API_CRDS = ROOT / ".tools" / "gateway-api"
# scripts/bootstrap cluster: kube-apiserver, kubelet, kubectl, CoreDNS, ... of the local cluster.
CLUSTER_BIN = ROOT / ".tools" / "cluster" / "bin"
# scripts/bootstrap node: Azurite's Blob service (package.json pins it).
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
