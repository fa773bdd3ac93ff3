{{/*
Validation of values that the schema cannot express (combinations of values).
*/}}

{{/* Every misconfiguration fails here with a sentence that names the value to set. */}}
{{- define "airflow-azblob.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.executor (list "KubernetesExecutor" "LocalExecutor" "KubernetesExecutor,LocalExecutor" "LocalExecutor,KubernetesExecutor")) -}}
{{- fail (printf "executor %q is not supported: set executor to KubernetesExecutor, LocalExecutor, or both as KubernetesExecutor,LocalExecutor (pods by default, and a fast lane in the scheduler for tasks that ask for executor=\"LocalExecutor\"; no spaces, the first is the default)." $v.executor) -}}
{{- end -}}
{{- if and $v.azure.connection.clientOptions (not (include "airflow-azblob.azureConnectionCreated" .)) -}}
{{- fail (printf "azure.connection.clientOptions is set, but the connection comes from azure.connection.existingSecret %q, which the chart does not write: put the options in that connection's extra (e.g. {\"initial_backoff\": 1}), or leave azure.connection.clientOptions empty." $v.azure.connection.existingSecret) -}}
{{- end -}}
{{- if not $v.metrics.enabled -}}
{{- range $asked := list (ternary "metrics.serviceMonitor is always" "" (eq $v.metrics.serviceMonitor "always")) (ternary "metrics.prometheusRule is always" "" (eq $v.metrics.prometheusRule "always")) (ternary "metrics.grafanaDashboard.enabled is true" "" $v.metrics.grafanaDashboard.enabled) -}}
{{- if $asked -}}
{{- fail (printf "%s but metrics.enabled is false: no metrics are sent, so there is nothing to scrape, alert on or show. Set metrics.enabled=true, or leave it at its default." $asked) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (has $v.dags.mode (list "image" "gitSync" "gitBundle")) -}}
{{- fail (printf "dags.mode %q is not supported: set dags.mode to image, gitSync or gitBundle." $v.dags.mode) -}}
{{- end -}}
{{- if and (eq $v.dags.mode "gitSync") (not $v.dags.gitSync.repo) -}}
{{- fail "dags.mode is gitSync but no repository is configured: set dags.gitSync.repo to the URL of your DAG repository." -}}
{{- end -}}
{{- if and (eq $v.dags.mode "gitSync") $v.dags.gitSync.ssh.existingSecret $v.dags.gitSync.https.existingSecret -}}
{{- fail "dags.gitSync has both SSH and HTTPS credentials: set only one of dags.gitSync.ssh.existingSecret and dags.gitSync.https.existingSecret." -}}
{{- end -}}
{{- if and $v.workers.podOperator.enabled (eq (include "airflow-azblob.podOperatorNamespace" .) .Release.Namespace) -}}
{{- fail (printf "workers.podOperator.namespace is %s: step pods would run beside the release, where a task could exec into the scheduler or start a pod that mounts the release's Secrets. Set workers.podOperator.namespace to a namespace of their own (create it first, labelled pod-security.kubernetes.io/enforce=restricted), e.g. %s-steps." (ternary (printf "empty (the release namespace %q)" .Release.Namespace) (printf "the release namespace %q" .Release.Namespace) (not $v.workers.podOperator.namespace)) .Release.Namespace) -}}
{{- end -}}
{{- if and (eq $v.dags.mode "gitSync") $v.dags.gitSync.sparseCheckout (not (trimAll "/" $v.dags.gitSync.subPath)) -}}
{{- fail "dags.gitSync.sparseCheckout checks out the DAG folder alone, but dags.gitSync.subPath is empty (the repository root): set dags.gitSync.subPath to the folder of your DAGs (e.g. dags), or sparseCheckout=false." -}}
{{- end -}}
{{- if and (eq $v.dags.mode "gitSync") $v.dags.gitSync.ssh.existingSecret (not $v.dags.gitSync.ssh.knownHosts) (not $v.dags.gitSync.ssh.disableKnownHosts) -}}
{{- fail "dags.gitSync.ssh.existingSecret is set without known hosts: set dags.gitSync.ssh.knownHosts to the output of ssh-keyscan <git host>, or set dags.gitSync.ssh.disableKnownHosts=true to skip host key verification (insecure)." -}}
{{- end -}}
{{- if and (eq $v.dags.mode "gitBundle") (not $v.dags.gitBundle.repoUrl) -}}
{{- fail "dags.mode is gitBundle but no repository is configured: set dags.gitBundle.repoUrl to the URL of your DAG repository." -}}
{{- end -}}
{{- if and $v.logs.remote.enabled (not $v.logs.remote.container) -}}
{{- fail "logs.remote.enabled is true but logs.remote.container is empty: set logs.remote.container to an existing Blob container (e.g. airflow-logs), or set logs.remote.enabled=false." -}}
{{- end -}}
{{- if and $v.xcom.enabled (not $v.xcom.container) -}}
{{- fail "xcom.enabled is true but xcom.container is empty: set xcom.container (e.g. airflow-xcom), or set xcom.enabled=false." -}}
{{- end -}}
{{- if and (not $v.azurite.enabled) (not $v.azure.connection.accountUrl) (not $v.azure.connection.existingSecret) -}}
{{- fail "azurite.enabled is false and no storage connection is configured: set azure.connection.accountUrl (with azure.workloadIdentity) or azure.connection.existingSecret." -}}
{{- end -}}
{{- if and $v.azurite.enabled (or $v.azure.connection.accountUrl $v.azure.connection.existingSecret) -}}
{{- fail "azurite.enabled is true but a storage account is also configured: set azurite.enabled=false to use azure.connection.accountUrl or azure.connection.existingSecret." -}}
{{- end -}}
{{- if and (not $v.azurite.enabled) $v.azure.connection.accountUrl $v.azure.connection.existingSecret -}}
{{- fail "azure.connection.accountUrl and azure.connection.existingSecret are both set: set only one of them." -}}
{{- end -}}
{{- if and $v.azure.workloadIdentity.enabled (not $v.azure.workloadIdentity.clientId) -}}
{{- fail "azure.workloadIdentity.enabled is true but azure.workloadIdentity.clientId is empty: set azure.workloadIdentity.clientId to the client id of the managed identity." -}}
{{- end -}}
{{- if and (not $v.postgresql.enabled) (not $v.database.existingSecret) -}}
{{- fail "postgresql.enabled is false and no metadata database is configured: set database.existingSecret to a Secret holding the SQLAlchemy URL (key: database.existingSecretKey)." -}}
{{- end -}}
{{- if and $v.postgresql.enabled $v.database.existingSecret -}}
{{- fail "postgresql.enabled is true but database.existingSecret is also set: set postgresql.enabled=false to use your own database, or clear database.existingSecret to use the in-release PostgreSQL." -}}
{{- end -}}
{{- $baseUrl := dig "api" "base_url" "" ($v.config | default dict) -}}
{{- if and $baseUrl (not (regexMatch "^https?://[^/]+" $baseUrl)) -}}
{{- fail (printf "config.api.base_url %q is not a full URL: set it like https://airflow.example.com or https://example.com/airflow." $baseUrl) -}}
{{- end -}}
{{- range $value, $path := dict "dags.gitSync.subPath" $v.dags.gitSync.subPath "dags.gitBundle.subdir" $v.dags.gitBundle.subdir -}}
{{- if has ".." (splitList "/" ($path | default "")) -}}
{{- fail (printf "%s %q leaves the repository: set %s to a folder inside it (e.g. dags)." $value $path $value) -}}
{{- end -}}
{{- end -}}
{{- if and $v.database.existingSecretAsyncKey (or $v.postgresql.enabled (not $v.database.existingSecret)) -}}
{{- fail "database.existingSecretAsyncKey is set but the metadata DB is not your own: it names a key of database.existingSecret; set postgresql.enabled=false and database.existingSecret, or clear database.existingSecretAsyncKey." -}}
{{- end -}}
{{- if and (not $v.auth.existingSecret) (not $v.auth.users) -}}
{{- fail "auth.users is empty: set auth.users to at least one user:role pair (e.g. admin:admin)." -}}
{{- end -}}
{{- /* simple_auth_manager_all_admins makes every visitor an admin with no login: a development install says so. */}}
{{- $allAdmins := list (dig "core" "simple_auth_manager_all_admins" "" ($v.config | default dict)) -}}
{{- range $block := list "apiServer" "scheduler" "dagProcessor" "triggerer" "workers" -}}
{{- range (index $v $block).extraEnv | default list -}}
{{- if eq .name "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" }}{{ $allAdmins = append $allAdmins (.value | default "") }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range $allAdmins -}}
{{- if and (has (toString . | trim | lower) (list "t" "true" "1")) (not $v.auth.development) -}}
{{- fail "[core] simple_auth_manager_all_admins is on: every visitor of the UI and REST API would be an admin without a login. Remove it and sign in as a user of auth.users, or, for a development install nobody else can reach, set auth.development=true." -}}
{{- end -}}
{{- end -}}
{{- include "airflow-azblob.validateAuth" . -}}
{{- include "airflow-azblob.validateExposure" . -}}
{{- include "airflow-azblob.validateScaling" . -}}
{{- $owned := include "airflow-azblob.ownedConfig" . | fromYaml -}}
{{- /* An AIRFLOW__<SECTION>__<KEY> variable in extraEnv would beat airflow.cfg: the same keys are refused there. */}}
{{- range $block := list "apiServer" "scheduler" "dagProcessor" "triggerer" "workers" -}}
{{- range (index $v $block).extraEnv | default list -}}
{{- $name := .name -}}
{{- $parts := splitList "__" (trimPrefix "AIRFLOW__" $name) -}}
{{- if and (hasPrefix "AIRFLOW__" $name) (eq (len $parts) 2) -}}
{{- with dig (lower (index $parts 0)) (lower (index $parts 1)) "" $owned -}}
{{- fail (printf "%s.extraEnv sets %s, which would override a setting the chart computes: remove it and set %s instead." $block $name .set) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $section, $keys := ($v.config | default dict) -}}
{{- range $key, $_ := ($keys | default dict) -}}
{{- with dig $section $key "" $owned -}}
{{- fail (printf "config.%s.%s is computed by the chart: remove it from config and set %s instead." $section $key .set) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}


{{/* The Ingress and the HTTPRoute agree with config.api.base_url, the one statement of where users reach the UI. */}}
{{- define "airflow-azblob.validateExposure" -}}
{{- $v := .Values -}}
{{- $baseUrl := dig "api" "base_url" "" ($v.config | default dict) -}}
{{- $url := include "airflow-azblob.publicUrl" . | fromYaml -}}
{{- if and (or $v.ingress.enabled $v.httpRoute.enabled) (regexMatch "^[0-9.]+$|^\\[" $url.host) -}}
{{- fail (printf "config.api.base_url %q names an IP address, which an Ingress or HTTPRoute cannot match: set config.api.base_url to a DNS name (e.g. https://airflow.example.com)." $baseUrl) -}}
{{- end -}}
{{- if $v.ingress.enabled -}}
{{- $i := $v.ingress -}}
{{- if and $baseUrl $i.host (ne (lower $i.host) $url.host) -}}
{{- fail (printf "ingress.host %q disagrees with config.api.base_url %q (host %q): set ingress.host to %q, or leave it empty to take base_url's." $i.host $baseUrl $url.host $url.host) -}}
{{- end -}}
{{- $path := trimSuffix "/" ($i.path | default "") -}}
{{- if and $i.path $baseUrl (ne $path $url.path) -}}
{{- fail (printf "ingress.path %q disagrees with config.api.base_url %q (path %q): set ingress.path to %q, or leave it empty to take base_url's." $i.path $baseUrl ($url.path | default "/") ($url.path | default "/")) -}}
{{- end -}}
{{- if and $path (not $baseUrl) -}}
{{- fail (printf "ingress.path %q is a sub-path but config.api.base_url is not set: the api-server must know the path it is served under; set config.api.base_url to https://%s%s (ingress.path then follows it)." $i.path ($i.host | default "<host>") $path) -}}
{{- end -}}
{{- if and $i.tls.enabled (not $i.tls.secretName) -}}
{{- fail "ingress.tls.enabled is true but ingress.tls.secretName is empty: set ingress.tls.secretName to the Secret holding the certificate (or the one cert-manager should create)." -}}
{{- end -}}
{{- if and $i.tls.enabled (hasPrefix "http://" $baseUrl) -}}
{{- fail (printf "ingress.tls.enabled is true but config.api.base_url %q is http: set config.api.base_url to https://%s%s." $baseUrl $url.host $url.path) -}}
{{- end -}}
{{- end -}}
{{- if $v.httpRoute.enabled -}}
{{- if not $v.httpRoute.parentRefs -}}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: set httpRoute.parentRefs to the Gateway(s) to attach to, e.g. [{name: my-gateway, namespace: gateways}]." -}}
{{- end -}}
{{- if and $baseUrl $v.httpRoute.hostnames (not (has $url.host $v.httpRoute.hostnames)) -}}
{{- fail (printf "httpRoute.hostnames %v leave out config.api.base_url's host %q: add %q to httpRoute.hostnames, or leave them empty to take base_url's." $v.httpRoute.hostnames $url.host $url.host) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Replicas, the autoscaler and the disruption budgets: what the schema cannot compare. */}}
{{- define "airflow-azblob.validateScaling" -}}
{{- $a := .Values.apiServer.autoscaling -}}
{{- if $a.enabled -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "apiServer.autoscaling.minReplicas %v is above apiServer.autoscaling.maxReplicas %v: set minReplicas <= maxReplicas." $a.minReplicas $a.maxReplicas) -}}
{{- end -}}
{{- if not (or $a.targetCPUUtilizationPercentage $a.targetMemoryUtilizationPercentage) -}}
{{- fail "apiServer.autoscaling.enabled is true without a target: set apiServer.autoscaling.targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage." -}}
{{- end -}}
{{- range $resource, $target := dict "cpu" $a.targetCPUUtilizationPercentage "memory" $a.targetMemoryUtilizationPercentage -}}
{{- if and $target (not (dig "resources" "requests" $resource "" $.Values.apiServer)) -}}
{{- fail (printf "apiServer.autoscaling targets %s utilization, a percentage of the request, but apiServer.resources.requests.%s is not set: set it (e.g. %s)." $resource $resource (ternary "500m" "1Gi" (eq $resource "cpu"))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $root := . -}}
{{- range $component, $c := include "airflow-azblob.components" . | fromYaml -}}
{{- if $c.deployment -}}
{{- $budget := (index $root.Values $c.values).podDisruptionBudget | default dict -}}
{{- if not (or (kindIs "invalid" $budget.minAvailable) (kindIs "invalid" $budget.maxUnavailable)) -}}
{{- fail (printf "%s.podDisruptionBudget sets both minAvailable and maxUnavailable: set only one of them." $c.values) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* auth.oidc makes sense only with FAB, and needs a client and a way to find the provider's endpoints. */}}
{{- define "airflow-azblob.validateAuth" -}}
{{- $o := .Values.auth.oidc -}}
{{- if $o.enabled -}}
{{- if ne .Values.auth.manager "fab" -}}
{{- fail "auth.oidc.enabled needs the FAB auth manager: set auth.manager=fab (SimpleAuthManager has no OIDC sign-in)." -}}
{{- end -}}
{{- if not $o.clientId -}}
{{- fail "auth.oidc.clientId is empty: set it to the application (client) id registered with the provider." -}}
{{- end -}}
{{- if not $o.clientSecret.existingSecret -}}
{{- fail "auth.oidc.clientSecret.existingSecret is empty: create a Secret with the client secret (kubectl create secret generic <name> --from-literal=client-secret=...) and name it there." -}}
{{- end -}}
{{- if and $o.tenantId $o.metadataUrl -}}
{{- fail (printf "auth.oidc.tenantId %q and auth.oidc.metadataUrl %q are both set: tenantId means Entra ID's metadata document; keep one." $o.tenantId $o.metadataUrl) -}}
{{- end -}}
{{- $missing := list -}}
{{- range list "issuer" "authorizeUrl" "tokenUrl" "jwksUrl" }}{{ if not (get $o.endpoints .) }}{{ $missing = append $missing . }}{{ end }}{{ end -}}
{{- if and (not $o.tenantId) (not $o.metadataUrl) $missing -}}
{{- fail (printf "auth.oidc names no provider: set auth.oidc.tenantId (Microsoft Entra ID), auth.oidc.metadataUrl (any OpenID provider's .well-known/openid-configuration), or auth.oidc.endpoints (missing: %s)." (join ", " $missing)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
