"""Each documented misconfiguration fails at render time with a sentence that names the value to set."""

from __future__ import annotations

import pytest

from tests.support.helm import render_error

GIT_SYNC = {"dags.mode": "gitSync", "dags.gitSync.repo": "git@github.com:org/dags.git"}
SUB_PATH = {"config": {"api": {"base_url": "https://airflow.example.com/team-a/"}}}
OIDC = {
    "auth.manager": "fab",
    "auth.oidc.enabled": True,
    "auth.oidc.clientId": "app",
    "auth.oidc.clientSecret.existingSecret": "entra-client",
    "auth.oidc.tenantId": "contoso.onmicrosoft.com",
}

CASES = {
    "unknown executor": ({"executor": "CeleryExecutor"}, "set executor to KubernetesExecutor, LocalExecutor, or both"),
    "executors with a space": ({"executor": "KubernetesExecutor, LocalExecutor"}, "no spaces, the first is"),
    "unknown dag mode": ({"dags.mode": "nfs"}, "set dags.mode to image, gitSync or gitBundle"),
    "git-sync without a repo": ({"dags.mode": "gitSync"}, "set dags.gitSync.repo"),
    "ssh without known_hosts and no opt-out": (
        {**GIT_SYNC, "dags.gitSync.ssh.existingSecret": "git-ssh"},
        "set dags.gitSync.ssh.knownHosts",
    ),
    "ssh and https credentials together": (
        {
            **GIT_SYNC,
            "dags.gitSync.ssh.existingSecret": "git-ssh",
            "dags.gitSync.ssh.disableKnownHosts": True,
            "dags.gitSync.https.existingSecret": "git-https",
        },
        "set only one of dags.gitSync.ssh.existingSecret and dags.gitSync.https.existingSecret",
    ),
    "git bundle without a repo": ({"dags.mode": "gitBundle"}, "set dags.gitBundle.repoUrl"),
    "remote logs without a container": ({"logs.remote.container": ""}, "set logs.remote.container"),
    "xcom without a container": ({"xcom.container": ""}, "set xcom.container"),
    "azurite off without a storage connection": ({"azurite.enabled": False}, "set azure.connection.accountUrl"),
    "azurite on with a storage account": (
        {"azure.connection.accountUrl": "https://acct.blob.core.windows.net"},
        "set azurite.enabled=false",
    ),
    "account url and connection secret together": (
        {
            "azurite.enabled": False,
            "azure.connection.accountUrl": "https://acct.blob.core.windows.net",
            "azure.connection.existingSecret": "s",
        },
        "set only one of them",
    ),
    "workload identity without a client id": (
        {"azure.workloadIdentity.enabled": True},
        "set azure.workloadIdentity.clientId",
    ),
    "postgresql off without a database secret": ({"postgresql.enabled": False}, "set database.existingSecret"),
    "async db key without a database secret": (
        {"database.existingSecretAsyncKey": "async-connection"},
        "set postgresql.enabled=false and database.existingSecret",
    ),
    "async db key beside the in-release postgresql": (
        {"database.existingSecret": "db", "database.existingSecretAsyncKey": "async-connection"},
        "set postgresql.enabled=false",
    ),
    "async db url set in config": (
        {"config": {"database": {"sql_alchemy_conn_async": "postgresql+asyncpg://x"}}},
        "set database.existingSecretAsyncKey",
    ),
    "in-release postgresql beside a database secret": (
        {"database.existingSecret": "db"},
        "set postgresql.enabled=false to use your own database, or clear database.existingSecret",
    ),
    "base url without a scheme": ({"config": {"api": {"base_url": "airflow.example.com"}}}, "set it like https://"),
    "git-sync subPath outside the repository": (
        {**GIT_SYNC, "dags.gitSync.subPath": "../etc"},
        "set dags.gitSync.subPath to a folder inside it",
    ),
    "git bundle subdir outside the repository": (
        {"dags.mode": "gitBundle", "dags.gitBundle.repoUrl": "https://x/y.git", "dags.gitBundle.subdir": "dags/../.."},
        "set dags.gitBundle.subdir to a folder inside it",
    ),
    "no users": ({"auth.users": []}, "set auth.users"),
    "executor set in config": ({"config": {"core": {"executor": "LocalExecutor"}}}, "set executor instead"),
    "execution api url set in config": (
        {"config": {"core": {"execution_api_server_url": "http://x/execution/"}}},
        "set apiServer.internalUrl",
    ),
    "jwt secret set in config": ({"config": {"api_auth": {"jwt_secret": "x"}}}, "set secrets.jwtSecret"),
    "remote log folder set in config": (
        {"config": {"logging": {"remote_base_log_folder": "wasb://x"}}},
        "set logs.remote.prefix",
    ),
    "ingress host that disagrees with base_url": (
        {"ingress.enabled": True, "ingress.host": "other.example.com", **SUB_PATH},
        'ingress.host "other.example.com" disagrees with config.api.base_url "https://airflow.example.com/team-a/"'
        ' (host "airflow.example.com"): set ingress.host to "airflow.example.com"',
    ),
    "ingress path that disagrees with base_url": (
        {"ingress.enabled": True, "ingress.path": "/team-b", **SUB_PATH},
        'ingress.path "/team-b" disagrees with config.api.base_url "https://airflow.example.com/team-a/"'
        ' (path "/team-a"): set ingress.path to "/team-a"',
    ),
    "ingress sub-path without base_url": (
        {"ingress.enabled": True, "ingress.host": "af.example.com", "ingress.path": "/airflow"},
        "set config.api.base_url to https://af.example.com/airflow",
    ),
    "ingress tls without a secret": (
        {"ingress.enabled": True, "ingress.tls.enabled": True},
        "set ingress.tls.secretName",
    ),
    "ingress tls with an http base_url": (
        {
            "ingress.enabled": True,
            "ingress.tls.enabled": True,
            "ingress.tls.secretName": "tls",
            "config": {"api": {"base_url": "http://airflow.example.com/"}},
        },
        "set config.api.base_url to https://airflow.example.com",
    ),
    "route without a gateway": ({"httpRoute.enabled": True}, "set httpRoute.parentRefs"),
    "route hostnames without base_url's host": (
        {
            "httpRoute.enabled": True,
            "httpRoute.parentRefs": [{"name": "gw"}],
            "httpRoute.hostnames": ["x.io"],
            **SUB_PATH,
        },
        'add "airflow.example.com" to httpRoute.hostnames',
    ),
    "autoscaler below its minimum": (
        {
            "apiServer.autoscaling.enabled": True,
            "apiServer.autoscaling.minReplicas": 4,
            "apiServer.autoscaling.maxReplicas": 3,
        },
        "set minReplicas <= maxReplicas",
    ),
    "autoscaler without a target": (
        {"apiServer.autoscaling.enabled": True, "apiServer.autoscaling.targetCPUUtilizationPercentage": None},
        "set apiServer.autoscaling.targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage",
    ),
    "autoscaler on cpu without a cpu request": (
        {"apiServer.autoscaling.enabled": True, "apiServer.resources.requests.cpu": None},
        "apiServer.resources.requests.cpu is not set",
    ),
    "budget with both bounds": (
        {"scheduler.podDisruptionBudget.minAvailable": 1, "scheduler.podDisruptionBudget.maxUnavailable": 1},
        "scheduler.podDisruptionBudget sets both minAvailable and maxUnavailable: set only one of them",
    ),
    "ingress for a base_url that names an IP address": (
        {"ingress.enabled": True, "config": {"api": {"base_url": "https://10.0.0.5:8443/airflow/"}}},
        "names an IP address, which an Ingress or HTTPRoute cannot match: set config.api.base_url to a DNS name",
    ),
    "a computed setting in a component's extraEnv": (
        {"workers.extraEnv": [{"name": "AIRFLOW__AZBLOB_XCOM__THRESHOLD", "value": "1000"}]},
        "workers.extraEnv sets AIRFLOW__AZBLOB_XCOM__THRESHOLD, which would override a setting the chart computes:"
        " remove it and set xcom.threshold instead",
    ),
    "a secret of the chart's in extraEnv": (
        {"scheduler.extraEnv": [{"name": "AIRFLOW__API_AUTH__JWT_SECRET", "value": "x"}]},
        "set secrets.jwtSecret.existingSecret instead",
    ),
    "backend threshold set in config": (
        {"config": {"azblob_xcom": {"threshold": 1000}}},
        "config.azblob_xcom.threshold is computed by the chart: remove it from config and set xcom.threshold instead",
    ),
    "everyone an admin without a login": (
        {"config": {"core": {"simple_auth_manager_all_admins": "True"}}},
        "simple_auth_manager_all_admins is on: every visitor of the UI and REST API would be an admin without a login",
    ),
    "everyone an admin through extraEnv": (
        {"apiServer": {"extraEnv": [{"name": "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "value": "1"}]}},
        "or, for a development install nobody else can reach, set auth.development=true",
    ),
    "alerts webhook url in config (a ConfigMap)": (
        {"config": {"alerts": {"webhook_url": "https://hooks.slack.com/services/x"}}},
        "set alerts.webhook.existingSecret (a Secret, never a ConfigMap) instead",
    ),
    "OIDC sign-in with SimpleAuthManager": (
        {**OIDC, "auth.manager": "simple"},
        "auth.oidc.enabled needs the FAB auth manager: set auth.manager=fab",
    ),
    "OIDC without a client id": ({**OIDC, "auth.oidc.clientId": ""}, "auth.oidc.clientId is empty: set it to"),
    "OIDC client secret in no Secret": (
        {**OIDC, "auth.oidc.clientSecret.existingSecret": ""},
        "auth.oidc.clientSecret.existingSecret is empty: create a Secret with the client secret",
    ),
    "OIDC tenant and metadata URL both": (
        {**OIDC, "auth.oidc.metadataUrl": "https://idp.example.com/.well-known/openid-configuration"},
        "are both set: tenantId means Entra ID's metadata document; keep one",
    ),
    "OIDC provider named nowhere": (
        {**OIDC, "auth.oidc.tenantId": "", "auth.oidc.endpoints": {"issuer": "https://idp.example.com"}},
        "auth.oidc names no provider: set auth.oidc.tenantId (Microsoft Entra ID), auth.oidc.metadataUrl (any "
        "OpenID provider's .well-known/openid-configuration), or auth.oidc.endpoints (missing: authorizeUrl, "
        "tokenUrl, jwksUrl)",
    ),
    "service monitor forced with metrics off": (
        {"metrics.serviceMonitor": "always"},
        "metrics.serviceMonitor is always but metrics.enabled is false: no metrics are sent",
    ),
    "alert rules forced with metrics off": (
        {"metrics.prometheusRule": "always"},
        "metrics.prometheusRule is always but metrics.enabled is false: no metrics are sent",
    ),
    "dashboard with metrics off": (
        {"metrics.grafanaDashboard.enabled": True},
        "metrics.grafanaDashboard.enabled is true but metrics.enabled is false: no metrics are sent, so there is "
        "nothing to scrape, alert on or show. Set metrics.enabled=true",
    ),
    "auth manager in config": (
        {"config": {"core": {"auth_manager": "my.AuthManager"}}},
        "config.core.auth_manager is computed by the chart: remove it from config and set auth.manager instead",
    ),
}


@pytest.mark.parametrize(("values", "sentence"), CASES.values(), ids=CASES.keys())
def test_misconfiguration_fails_naming_the_value_to_set(values: dict, sentence: str) -> None:
    error = render_error(values)
    assert sentence in error, error


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"unknown": 1}, "additional properties 'unknown' not allowed"),
        ({"xcom.compression": "gz"}, "/xcom/compression"),
        ({"logs.remote.enable": True}, "additional properties 'enable' not allowed"),
        ({"images.airflow.pullPolicy": "Sometimes"}, "/images/airflow/pullPolicy"),
        ({"images.airflow.digest": "latest"}, "/images/airflow/digest"),
        ({"xcom.container": "XCom_Results"}, "/xcom/container"),
        ({"logs.remote.container": "airflow--logs"}, "/logs/remote/container"),
        ({"securityContext.runAsUser": 0}, "/securityContext/runAsUser"),
        ({"azurite.enabled": False, "azure.connection.accountUrl": "http://a.blob.core.windows.net"}, "/accountUrl"),
        ({"apiServer.internalUrl": "api-server:8080"}, "/apiServer/internalUrl"),
        ({"azurite.blobEndpoint": "azurite:10000/devstoreaccount1"}, "/azurite/blobEndpoint"),
        ({"postgresql.persistence.size": "lots"}, "/postgresql/persistence/size"),
        ({**GIT_SYNC, "dags.gitSync.ref": ""}, "/dags/gitSync/ref"),
        ({"database.migrationWaitTimeout": 0}, "/database/migrationWaitTimeout"),
        ({"jobs.dbCleanup.retentionDays": 0}, "/jobs/dbCleanup/retentionDays"),
        ({"jobs.dbCleanup.xcomBlobGraceHours": -1}, "/jobs/dbCleanup/xcomBlobGraceHours"),
        ({"alerts.timeoutSeconds": 0}, "/alerts/timeoutSeconds"),
        ({"alerts.webhook.key": ""}, "/alerts/webhook/key"),
        ({"alerts.timeoutSeconds": 30}, "/alerts/timeoutSeconds"),
        ({"workers.podOperator.namespace": "Steps"}, "/workers/podOperator/namespace"),
        ({"timezone": "KST"}, "/timezone"),
        ({"timezone": "Asia/Seoul "}, "/timezone"),
        ({"dagProcessor.replicas": 2}, "/dagProcessor/replicas"),
        ({"dagProcessor.podDisruptionBudget.enabled": True}, "additional properties 'podDisruptionBudget' not allowed"),
        ({"scheduler.podDisruptionBudget.maxUnavailable": "half"}, "/scheduler/podDisruptionBudget/maxUnavailable"),
        ({"ingress.hosts": ["a.example.com"]}, "additional properties 'hosts' not allowed"),
        ({"workers.extraVolumes": [{"configMap": {"name": "x"}}]}, "/workers/extraVolumes/0"),
        ({"emptyDirSizeLimits.tmp": "lots"}, "/emptyDirSizeLimits/tmp"),
        ({"auth.manager": "ldap"}, "/auth/manager"),
        ({**OIDC, "auth.oidc.scope": "email profile"}, "/auth/oidc/scope"),
        ({"apiServer.forwardedAllowIps": "ingress-nginx"}, "/apiServer/forwardedAllowIps"),
        ({"metrics.alerts.taskFailureRatio": 25}, "/metrics/alerts/taskFailureRatio"),
        ({"metrics.alerts.selector": '{job="airflow"}'}, "/metrics/alerts/selector"),
        ({"metrics.alerts.queuedMinutes": 0}, "/metrics/alerts/queuedMinutes"),
    ],
    ids=[
        "unknown top-level key",
        "unknown codec",
        "misspelt key",
        "bad pull policy",
        "digest that is a tag",
        "container name azure refuses",
        "log container with a double hyphen",
        "root uid",
        "token credential over http",
        "internal url without a scheme",
        "blob endpoint without a scheme",
        "size that is no quantity",
        "empty git ref",
        "no migration wait",
        "cleanup of every row",
        "negative blob grace",
        "alerts that cannot wait",
        "alerts secret without a key",
        "alerts outliving the task process",
        "step namespace that is no name",
        "zone abbreviation",
        "zone with a space",
        "two dag-processors on one bundle",
        "a budget for the one dag-processor",
        "budget that is no number or percentage",
        "ingress hosts list of another chart",
        "volume without a name",
        "size that is no quantity for a scratch dir",
        "auth manager of another kind",
        "OIDC scope without openid",
        "proxy addresses that are a name",
        "failure ratio as a percentage",
        "alert selector with braces",
        "no queued minutes",
    ],
)
def test_values_schema_rejects_unknown_keys_and_bad_values(values: dict, where: str) -> None:
    assert where in render_error(values)
