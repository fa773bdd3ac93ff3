"""Fixtures of the chart tests: cached renders of the values matrix and of both profiles.

Every combination is rendered once per session (tests.support.helm caches by values), so adding a test that
reads an existing render costs nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.helm import Manifest, render

GIT_SYNC = {
    "dags.mode": "gitSync",
    "dags.gitSync.repo": "https://example.com/org/dags.git",
    "dags.gitSync.subPath": "dags",
}
GIT_BUNDLE = {"dags.mode": "gitBundle", "dags.gitBundle.repoUrl": "https://example.com/org/dags.git"}
ACCOUNT = {"azurite.enabled": False, "azure.connection.accountUrl": "https://acct.blob.core.windows.net"}
KNOWN_HOSTS = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
EXTERNAL_DB = {"postgresql.enabled": False, "database.existingSecret": "metadata-db"}

# Every production option at once: HA replicas, autoscaling, ingress and route at a sub-path, every extension point.
EXTENSIONS = {
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "extraVolumes": [{"name": "team-config", "configMap": {"name": "{{ .Release.Name }}-team-config"}}],
    "extraVolumeMounts": [{"name": "team-config", "mountPath": "/opt/team", "readOnly": True}],
    "extraEnvFrom": [{"configMapRef": {"name": "team-env"}}],
    "extraInitContainers": [
        {
            "name": "prepare",
            "image": "busybox:1.37",
            "command": ["true"],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
    ],
}
PRODUCTION_SURFACE: dict[str, Any] = {
    "config": {"api": {"base_url": "https://airflow.example.com/team-a/"}},
    "scheduler.replicas": 2,
    "triggerer.replicas": 2,
    "apiServer.autoscaling.enabled": True,
    "ingress.enabled": True,
    "ingress.className": "nginx",
    "ingress.tls.enabled": True,
    "ingress.tls.secretName": "airflow-tls",
    "httpRoute.enabled": True,
    "httpRoute.parentRefs": [{"name": "shared", "namespace": "gateways", "sectionName": "https"}],
    # A string object may use the chart's helpers (tpl), e.g. its labels.
    "extraObjects": [
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-team-config\n  labels:"
        '\n    {{- include "airflow-azblob.labels" (dict "root" . "component" "team-config") | nindent 4 }}'
        "\ndata:\n  team: data\n"
    ],
    **{
        f"{block}.{key}": value
        for block in ("apiServer", "scheduler", "triggerer", "workers")
        for key, value in EXTENSIONS.items()
    },
}

# The values matrix: executor, the three DAG modes, remote logs, Azurite, PostgreSQL, NetworkPolicies, profiles.
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "local-executor": {"executor": "LocalExecutor"},
    "local-executor-git-sync": {"executor": "LocalExecutor", **GIT_SYNC},
    "fast-lane": {"executor": "KubernetesExecutor,LocalExecutor", **GIT_SYNC, "networkPolicies.enabled": True},
    "git-sync": GIT_SYNC,
    "git-sync-ssh": {
        **GIT_SYNC,
        "dags.gitSync.repo": "git@github.com:org/dags.git",
        "dags.gitSync.ssh.existingSecret": "git-ssh",
        "dags.gitSync.ssh.knownHosts": KNOWN_HOSTS,
    },
    "git-sync-https": {**GIT_SYNC, "dags.gitSync.https.existingSecret": "git-https"},
    "git-bundle": {
        **GIT_BUNDLE,
        "dags.gitBundle.connectionId": "git_dags",
        "dags.gitBundle.connectionSecret": "git-conn",
    },
    "remote-logs-off": {"logs.remote.enabled": False},
    "xcom-off": {"xcom.enabled": False},
    "azurite-off": ACCOUNT,
    "azurite-ephemeral": {"azurite.persistence.enabled": False},
    "postgresql-off": EXTERNAL_DB,
    "network-policies": {"networkPolicies.enabled": True},
    "network-policies-external": {"networkPolicies.enabled": True, **ACCOUNT, **EXTERNAL_DB},
    "existing-secrets": {
        "secrets.fernetKey.existingSecret": "my-fernet",
        "secrets.apiSecretKey.existingSecret": "my-api",
        "secrets.jwtSecret.existingSecret": "my-jwt",
        "auth.existingSecret": "my-passwords",
        "azurite.enabled": False,
        "azure.connection.existingSecret": "my-storage",
    },
    "workload-identity": {**ACCOUNT, "azure.workloadIdentity.enabled": True, "azure.workloadIdentity.clientId": "c1"},
    "base-url-subpath": {"config": {"api": {"base_url": "https://airflow.example.com/team-a/"}}},
    "production-surface": PRODUCTION_SURFACE,
    "metrics": {"metrics.enabled": True, "networkPolicies.enabled": True},
    "fab-oidc": {
        "auth.manager": "fab",
        "auth.oidc.enabled": True,
        "auth.oidc.clientId": "app",
        "auth.oidc.clientSecret.existingSecret": "oidc-client",
        "auth.oidc.tenantId": "contoso.onmicrosoft.com",
        "apiServer.forwardedAllowIps": "10.0.0.0/8",
    },
}
PROFILES = ("kind", "aks-example")


def case_id(case: tuple[str | None, str]) -> str:
    profile, name = case
    return f"profile-{profile}" if profile else name


CASES: list[tuple[str | None, str]] = [(None, name) for name in MATRIX] + [(p, "defaults") for p in PROFILES]


def render_case(case: tuple[str | None, str]) -> Manifest:
    profile, name = case
    return render(MATRIX[name], profile=profile)


@pytest.fixture(params=CASES, ids=[case_id(c) for c in CASES])
def any_render(request: pytest.FixtureRequest) -> Manifest:
    """Each combination of the values matrix and each profile, rendered once per session."""
    return render_case(request.param)


@pytest.fixture
def defaults() -> Manifest:
    return render()


@pytest.fixture
def kind() -> Manifest:
    return render(profile="kind")


@pytest.fixture
def aks() -> Manifest:
    return render(profile="aks-example")
