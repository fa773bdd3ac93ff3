{{/*
Helpers of the airflow-azblob chart. One helper per fact that several templates need: the DAG path, the
execution API URL, the Secret names, the image paths. Never spell one of these facts twice.
*/}}

{{/* ----------------------------------------------------------------------------------------- names */}}

{{- define "airflow-azblob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airflow-azblob.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: <fullname>-<component>. Call with (dict "root" $ "component" "scheduler"). */}}
{{- define "airflow-azblob.componentName" -}}
{{- printf "%s-%s" (include "airflow-azblob.fullname" .root | trunc 45 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airflow-azblob.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------- labels */}}

{{/* Selector labels: the strict, immutable subset. Call with (dict "root" $ "component" "scheduler"). */}}
{{- define "airflow-azblob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airflow-azblob.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of an object. Call with (dict "root" $ "component" "scheduler"). */}}
{{- define "airflow-azblob.labels" -}}
{{ include "airflow-azblob.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: airflow
helm.sh/chart: {{ include "airflow-azblob.chart" .root }}
{{- end -}}

{{/* Pod labels: all labels, the workload identity label of Airflow pods, and the component's podLabels. */}}
{{- define "airflow-azblob.podLabels" -}}
{{ include "airflow-azblob.labels" . }}
{{- if and .airflow .root.Values.azure.workloadIdentity.enabled }}
azure.workload.identity/use: "true"
{{- end }}
{{- with .podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------- images */}}

{{- define "airflow-azblob.image" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

{{- define "airflow-azblob.airflowImage" -}}
{{- include "airflow-azblob.image" .Values.images.airflow -}}
{{- end -}}

{{/* ------------------------------------------------------------------------ paths inside the image */}}

{{/* AIRFLOW_HOME of the image (the Dockerfile's apache/airflow base). */}}
{{- define "airflow-azblob.airflowHome" -}}/opt/airflow{{- end -}}

{{/* PYTHONPATH that makes include.azblob_xcom_backend importable: the image copies include/ to <this>/include. */}}
{{- define "airflow-azblob.pythonPath" -}}/opt/airflow{{- end -}}

{{/* [core] plugins_folder: the image copies include/plugins there (include/plugins/task_termination.py). */}}
{{- define "airflow-azblob.pluginsFolder" -}}{{ include "airflow-azblob.pythonPath" . }}/include/plugins{{- end -}}

{{/* Where the image bakes DAGs (dags.mode image). */}}
{{- define "airflow-azblob.imageDagsFolder" -}}/opt/airflow/dags{{- end -}}

{{/* Directory of the airflow.cfg ConfigMap mount; AIRFLOW_CONFIG points at airflow.cfg inside it. */}}
{{- define "airflow-azblob.configDir" -}}/opt/airflow/config{{- end -}}

{{- define "airflow-azblob.logsFolder" -}}/opt/airflow/logs{{- end -}}

{{/* Writable copy of the SimpleAuthManager passwords file (the manager opens it read-write). */}}
{{- define "airflow-azblob.authDir" -}}/opt/airflow/auth{{- end -}}

{{- define "airflow-azblob.podTemplateDir" -}}/opt/airflow/pod_templates{{- end -}}

{{/* git-sync: the volume is mounted at this root in every container; git-sync links the checkout at <root>/<link>. */}}
{{- define "airflow-azblob.gitSyncRoot" -}}/git{{- end -}}
{{- define "airflow-azblob.gitSyncLink" -}}repo{{- end -}}

{{/*
The DAGs folder of every component and every worker pod, and [core] dags_folder.
gitSync: <root>/<link>/<subPath>; image and gitBundle: the image's folder (GitDagBundle ignores it).
*/}}
{{- define "airflow-azblob.dagsFolder" -}}
{{- if eq .Values.dags.mode "gitSync" -}}
{{- $sub := trimAll "/" .Values.dags.gitSync.subPath -}}
{{- printf "%s/%s" (include "airflow-azblob.gitSyncRoot" .) (include "airflow-azblob.gitSyncLink" .) -}}
{{- if $sub }}/{{ $sub }}{{ end -}}
{{- else -}}
{{- include "airflow-azblob.imageDagsFolder" . -}}
{{- end -}}
{{- end -}}

{{/* Does this component need the DAG files on disk (git-sync sidecar)? Call with (dict "root" $ "component" ...). */}}
{{- define "airflow-azblob.needsDags" -}}
{{- if or (has .component (list "dag-processor" "triggerer" "worker")) (and (eq .component "scheduler") (eq .root.Values.executor "LocalExecutor")) -}}true{{- end -}}
{{- end -}}

{{/* Do tasks run in this component's pods? The workers', or the scheduler's with the LocalExecutor. Call with
(dict "root" $ "component" ...). */}}
{{- define "airflow-azblob.runsTasks" -}}
{{- if or (eq .component "worker") (and (eq .component "scheduler") (eq .root.Values.executor "LocalExecutor")) -}}true{{- end -}}
{{- end -}}

{{/* The kubernetes_default connection of workers.podOperator: in-cluster, the step pods' namespace, and the XCom
sidecar's image and security context (the chart's own restricted one). */}}
{{- define "airflow-azblob.podOperatorNamespace" -}}
{{- .Values.workers.podOperator.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "airflow-azblob.podOperatorConnection" -}}
{{- $p := .Values.workers.podOperator -}}
{{- $extra := dict
  "in_cluster" true
  "namespace" (include "airflow-azblob.podOperatorNamespace" .)
  "xcom_sidecar_container_image" ($p.xcomSidecarImage | default (include "airflow-azblob.airflowImage" .))
  "xcom_sidecar_container_security_context" (include "airflow-azblob.containerSecurityContext" . | fromYaml | toJson)
-}}
{{- dict "conn_type" "kubernetes" "extra" $extra | toJson -}}
{{- end -}}

{{/* -------------------------------------------------------------------------------------- endpoints */}}

{{/* The log server a component runs for the api-server, as (dict "port" ...), or nothing: the triggerer always
(its triggers' logs), the scheduler with the LocalExecutor (its tasks' logs). The port is airflow.cfg's own setting.
Call with (dict "root" $ "component" ...). */}}
{{- define "airflow-azblob.logServer" -}}
{{- $logging := .root.Values.config.logging | default dict -}}
{{- if eq .component "triggerer" -}}
port: {{ dig "trigger_log_server_port" 8794 $logging | int }}
{{- else if and (eq .component "scheduler") (eq .root.Values.executor "LocalExecutor") -}}
port: {{ dig "worker_log_server_port" 8793 $logging | int }}
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.apiServerServiceName" -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "api-server") -}}
{{- end -}}

{{/* Path of [api] base_url without a trailing slash ("" when the UI is served at the root). */}}
{{- define "airflow-azblob.basePath" -}}
{{- $baseUrl := dig "api" "base_url" "" .Values.config -}}
{{- if $baseUrl -}}{{- (urlParse $baseUrl).path | trimSuffix "/" -}}{{- end -}}
{{- end -}}

{{/* URL other processes reach the api-server at, base path included. */}}
{{- define "airflow-azblob.apiServerUrl" -}}
{{- $url := .Values.apiServer.internalUrl | default (printf "http://%s:%v" (include "airflow-azblob.apiServerServiceName" .) .Values.apiServer.service.port) -}}
{{- printf "%s%s" (trimSuffix "/" $url) (include "airflow-azblob.basePath" .) -}}
{{- end -}}

{{/* [core] execution_api_server_url: worker pods must reach it or tasks fail with httpx.ConnectError. */}}
{{- define "airflow-azblob.executionApiUrl" -}}
{{- printf "%s/execution/" (include "airflow-azblob.apiServerUrl" .) -}}
{{- end -}}

{{- define "airflow-azblob.azuriteServiceName" -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "azurite") -}}
{{- end -}}

{{- define "airflow-azblob.azuriteAccount" -}}devstoreaccount1{{- end -}}

{{/* Azurite's well-known development key (public, documented by Microsoft; not a secret). */}}
{{- define "airflow-azblob.azuriteKey" -}}Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=={{- end -}}

{{- define "airflow-azblob.azuriteBlobEndpoint" -}}
{{- .Values.azurite.blobEndpoint | default (printf "http://%s:10000/%s" (include "airflow-azblob.azuriteServiceName" .) (include "airflow-azblob.azuriteAccount" .)) | trimSuffix "/" -}}
{{- end -}}

{{- define "airflow-azblob.postgresqlServiceName" -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "postgresql") -}}
{{- end -}}

{{/* ------------------------------------------------------------------------------- Azure connection */}}

{{- define "airflow-azblob.azureConnectionSecretName" -}}
{{- if and (not .Values.azurite.enabled) .Values.azure.connection.existingSecret -}}
{{- .Values.azure.connection.existingSecret -}}
{{- else -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "azure-connection") -}}
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.azureConnectionSecretKey" -}}
{{- if and (not .Values.azurite.enabled) .Values.azure.connection.existingSecret -}}
{{- .Values.azure.connection.existingSecretKey -}}
{{- else -}}connection{{- end -}}
{{- end -}}

{{/* Does the chart create the connection Secret (Azurite or account URL)? */}}
{{- define "airflow-azblob.azureConnectionCreated" -}}
{{- if or .Values.azurite.enabled (not .Values.azure.connection.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The AIRFLOW_CONN_* value the chart creates: JSON, as Airflow reads it from the environment. */}}
{{- define "airflow-azblob.azureConnectionValue" -}}
{{- if .Values.azurite.enabled -}}
{{- $cs := printf "DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;" (include "airflow-azblob.azuriteAccount" .) (include "airflow-azblob.azuriteKey" .) (include "airflow-azblob.azuriteBlobEndpoint" .) -}}
{{- dict "conn_type" "wasb" "extra" (dict "connection_string" $cs) | toJson -}}
{{- else -}}
{{- dict "conn_type" "wasb" "host" .Values.azure.connection.accountUrl | toJson -}}
{{- end -}}
{{- end -}}

{{/* Environment variable name of a connection id: AIRFLOW_CONN_<ID upper-cased>. */}}
{{- define "airflow-azblob.connEnvName" -}}
{{- printf "AIRFLOW_CONN_%s" (upper .) -}}
{{- end -}}

{{- define "airflow-azblob.logsConnectionId" -}}
{{- .Values.logs.remote.connectionId | default .Values.azure.connection.id -}}
{{- end -}}

{{/* ------------------------------------------------------------------------------------------ secrets */}}

{{- define "airflow-azblob.metadataSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.metadataSecretKey" -}}
{{- if .Values.postgresql.enabled -}}connection{{- else -}}{{ .Values.database.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* Name of a generated secret unless an existing one is configured. Call with (dict "root" $ "value" <block> "suffix" "fernet-key"). */}}
{{- define "airflow-azblob.secretName" -}}
{{- .value.existingSecret | default (include "airflow-azblob.componentName" (dict "root" .root "component" .suffix)) -}}
{{- end -}}

{{- define "airflow-azblob.fernetSecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.fernetKey "suffix" "fernet-key") -}}
{{- end -}}

{{- define "airflow-azblob.apiSecretKeySecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.apiSecretKey "suffix" "api-secret-key") -}}
{{- end -}}

{{- define "airflow-azblob.jwtSecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.jwtSecret "suffix" "jwt-secret") -}}
{{- end -}}

{{- define "airflow-azblob.authSecretName" -}}
{{- .Values.auth.existingSecret | default (include "airflow-azblob.componentName" (dict "root" . "component" "auth")) -}}
{{- end -}}

{{/*
A value generated once: the existing Secret's value when the release already has it (lookup), a new random
one otherwise. Call with (dict "root" $ "name" <secret name> "key" <data key> "value" <new value>).
*/}}
{{- define "airflow-azblob.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- .value | b64enc -}}
{{- end -}}
{{- end -}}

{{/* --------------------------------------------------------------------------------- ServiceAccounts */}}

{{/* Call with (dict "root" $ "component" "scheduler" "values" .Values.scheduler). */}}
{{- define "airflow-azblob.serviceAccountName" -}}
{{- if .values.serviceAccount.create -}}
{{- .values.serviceAccount.name | default (include "airflow-azblob.componentName" .) -}}
{{- else -}}
{{- .values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* --------------------------------------------------------------------------------------- airflow.cfg */}}

{{/* [core] xcom_backend: the backend baked into the image, or Airflow's own when xcom.enabled is false. */}}
{{- define "airflow-azblob.xcomBackend" -}}
{{- ternary "include.azblob_xcom_backend.WasbXComBackend" "airflow.sdk.bases.xcom.BaseXCom" .Values.xcom.enabled -}}
{{- end -}}

{{/* Keys the chart computes, each with the value a user sets instead. */}}
{{- define "airflow-azblob.chartOwnedConfig" -}}
core:
  executor: executor
  dags_folder: dags.mode and dags.gitSync.subPath
  plugins_folder: the image (add plugins to include/plugins)
  execution_api_server_url: apiServer.internalUrl (or [api] base_url for a sub-path)
  xcom_backend: xcom.enabled
  simple_auth_manager_users: auth.users
  simple_auth_manager_passwords_file: auth.existingSecret
  fernet_key: secrets.fernetKey.existingSecret
  default_timezone: timezone
azblob_xcom:
  conn_id: azure.connection.id
  container: xcom.container
logging:
  remote_logging: logs.remote.enabled
  remote_base_log_folder: logs.remote.prefix
  remote_log_conn_id: logs.remote.connectionId
azure_remote_logging:
  remote_wasb_log_container: logs.remote.container
kubernetes_executor:
  pod_template_file: workers.*
  namespace: the release namespace
api:
  secret_key: secrets.apiSecretKey.existingSecret
api_auth:
  jwt_secret: secrets.jwtSecret.existingSecret
database:
  sql_alchemy_conn: database.existingSecret
  sql_alchemy_conn_async: database.existingSecretAsyncKey
dag_processor:
  dag_bundle_config_list: dags.mode gitBundle and dags.gitBundle.*
alerts:
  webhook_url: alerts.webhook.existingSecret (a Secret, never a ConfigMap)
  on_retry: alerts.onRetry
  timeout: alerts.timeoutSeconds
{{- end -}}

{{/* The settings the chart computes from values (section -> key -> value). */}}
{{- define "airflow-azblob.computedConfig" -}}
{{- $v := .Values -}}
{{- $core := dict
  "executor" $v.executor
  "dags_folder" (include "airflow-azblob.dagsFolder" .)
  "plugins_folder" (include "airflow-azblob.pluginsFolder" .)
  "execution_api_server_url" (include "airflow-azblob.executionApiUrl" .)
  "simple_auth_manager_users" (join "," $v.auth.users)
  "simple_auth_manager_passwords_file" (printf "%s/passwords.json" (include "airflow-azblob.authDir" .))
  "default_timezone" $v.timezone
-}}
{{- $_ := set $core "xcom_backend" (include "airflow-azblob.xcomBackend" .) -}}
{{- $cfg := dict "core" $core "alerts" (dict "on_retry" $v.alerts.onRetry "timeout" $v.alerts.timeoutSeconds) -}}
{{- if $v.xcom.enabled -}}
{{- $_ := set $cfg "azblob_xcom" (dict
  "conn_id" $v.azure.connection.id
  "container" $v.xcom.container
  "prefix" $v.xcom.prefix
  "threshold" $v.xcom.threshold
  "compression" $v.xcom.compression
  "max_concurrency" $v.xcom.maxConcurrency
  "retries" $v.xcom.retries) -}}
{{- end -}}
{{- $logging := dict "base_log_folder" (include "airflow-azblob.logsFolder" .) "remote_logging" $v.logs.remote.enabled -}}
{{- if $v.logs.remote.enabled -}}
{{- $_ := set $logging "remote_base_log_folder" (printf "wasb://%s" (trimAll "/" $v.logs.remote.prefix)) -}}
{{- $_ := set $logging "remote_log_conn_id" (include "airflow-azblob.logsConnectionId" .) -}}
{{- $_ := set $cfg "azure_remote_logging" (dict "remote_wasb_log_container" $v.logs.remote.container) -}}
{{- end -}}
{{- $_ := set $cfg "logging" $logging -}}
{{- if eq $v.executor "KubernetesExecutor" -}}
{{- $_ := set $cfg "kubernetes_executor" (dict
  "pod_template_file" (printf "%s/pod_template_file.yaml" (include "airflow-azblob.podTemplateDir" .))
  "namespace" .Release.Namespace
  "worker_container_repository" $v.images.airflow.repository
  "worker_container_tag" (toString $v.images.airflow.tag)) -}}
{{- end -}}
{{- if eq $v.dags.mode "gitBundle" -}}
{{- $g := $v.dags.gitBundle -}}
{{- $kwargs := dict "repo_url" $g.repoUrl "tracking_ref" $g.trackingRef "refresh_interval" (int $g.refreshInterval) -}}
{{- with $g.subdir }}{{ $_ := set $kwargs "subdir" . }}{{ end -}}
{{- with $g.connectionId }}{{ $_ := set $kwargs "git_conn_id" . }}{{ end -}}
{{- $bundle := dict "name" "dags" "classpath" "airflow.providers.git.bundles.git.GitDagBundle" "kwargs" $kwargs -}}
{{- $_ := set $cfg "dag_processor" (dict "dag_bundle_config_list" (list $bundle | toJson)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* One airflow.cfg value: booleans as True/False, whole numbers without an exponent. */}}
{{- define "airflow-azblob.cfgValue" -}}
{{- if kindIs "bool" . -}}{{ ternary "True" "False" . }}
{{- else if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}{{ int64 . }}
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/* airflow.cfg: the config: values with the computed settings on top, sections and keys sorted. */}}
{{- define "airflow-azblob.airflowConfig" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- range $section, $keys := (include "airflow-azblob.computedConfig" . | fromYaml) -}}
{{- $_ := set $cfg $section (merge $keys (get $cfg $section | default dict)) -}}
{{- end -}}
{{- range $i, $section := keys $cfg | sortAlpha }}
{{- if $i }}{{ "\n\n" }}{{ end -}}
[{{ $section }}]
{{- range $key, $value := get $cfg $section }}
{{ $key }} = {{ include "airflow-azblob.cfgValue" $value }}
{{- end }}
{{- end }}
{{- end -}}

{{/* -------------------------------------------------------------------------------------- validation */}}

{{/* Every misconfiguration fails here with a sentence that names the value to set. */}}
{{- define "airflow-azblob.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.executor (list "KubernetesExecutor" "LocalExecutor")) -}}
{{- fail (printf "executor %q is not supported: set executor to KubernetesExecutor or LocalExecutor." $v.executor) -}}
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
{{- $owned := include "airflow-azblob.chartOwnedConfig" . | fromYaml -}}
{{- range $section, $keys := ($v.config | default dict) -}}
{{- range $key, $_ := ($keys | default dict) -}}
{{- $instead := dig $section $key "" $owned -}}
{{- if $instead -}}
{{- fail (printf "config.%s.%s is computed by the chart: remove it from config and set %s instead." $section $key $instead) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ------------------------------------------------------------------------------- pod building blocks */}}

{{- define "airflow-azblob.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "airflow-azblob.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
Environment of an Airflow container. Call with (dict "root" $ "component" <name>).
Components: api-server, scheduler, dag-processor, triggerer, worker, db-migrate, db-cleanup, job (containers, tests).
*/}}
{{- define "airflow-azblob.airflowEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: AIRFLOW_HOME
  value: {{ include "airflow-azblob.airflowHome" $root | quote }}
- name: AIRFLOW_CONFIG
  value: {{ printf "%s/airflow.cfg" (include "airflow-azblob.configDir" $root) | quote }}
- name: PYTHONPATH
  value: {{ include "airflow-azblob.pythonPath" $root | quote }}
{{- /* The image's entrypoint would otherwise probe the DB itself; init containers wait for migrations. */}}
- name: CONNECTION_CHECK_MAX_COUNT
  value: "0"
{{- /* The image sets this variable, which beats airflow.cfg: keep both on the chart's choice. */}}
- name: AIRFLOW__CORE__XCOM_BACKEND
  value: {{ include "airflow-azblob.xcomBackend" $root | quote }}
- name: {{ include "airflow-azblob.connEnvName" $v.azure.connection.id }}
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.azureConnectionSecretName" $root }}
      key: {{ include "airflow-azblob.azureConnectionSecretKey" $root }}
{{- if and (eq $v.dags.mode "gitBundle") $v.dags.gitBundle.connectionId $v.dags.gitBundle.connectionSecret }}
- name: {{ include "airflow-azblob.connEnvName" $v.dags.gitBundle.connectionId }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.dags.gitBundle.connectionSecret }}
      key: connection
{{- end }}
{{- if has .component (list "api-server" "scheduler" "dag-processor" "triggerer" "db-migrate" "db-cleanup") }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.metadataSecretName" $root }}
      key: {{ include "airflow-azblob.metadataSecretKey" $root }}
{{- if $v.database.existingSecretAsyncKey }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.metadataSecretName" $root }}
      key: {{ $v.database.existingSecretAsyncKey }}
{{- else }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD
  value: python -m include.metadata_db_url
{{- end }}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.fernetSecretName" $root }}
      key: {{ $v.secrets.fernetKey.key }}
{{- end }}
{{- if has .component (list "api-server" "scheduler" "dag-processor" "triggerer") }}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.apiSecretKeySecretName" $root }}
      key: {{ $v.secrets.apiSecretKey.key }}
{{- end }}
{{- if has .component (list "api-server" "scheduler") }}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.jwtSecretName" $root }}
      key: {{ $v.secrets.jwtSecret.key }}
{{- end }}
{{- /* Failure alerts come from the task processes and the scheduler (include/plugins/failure_alerts.py). */}}
{{- if and $v.alerts.webhook.existingSecret (has .component (list "scheduler" "worker")) (not .helmTest) }}
- name: AIRFLOW__ALERTS__WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.alerts.webhook.existingSecret }}
      key: {{ $v.alerts.webhook.key }}
{{- end }}
{{- if and $v.workers.podOperator.enabled (include "airflow-azblob.runsTasks" .) (not .helmTest) }}
- name: AIRFLOW_CONN_KUBERNETES_DEFAULT
  value: {{ include "airflow-azblob.podOperatorConnection" $root | quote }}
{{- end }}
{{- if and $v.azure.workloadIdentity.enabled $v.azure.workloadIdentity.tenantId }}
- name: AZURE_TENANT_ID
  value: {{ $v.azure.workloadIdentity.tenantId | quote }}
{{- end }}
{{- end -}}

{{/* Volume mounts of an Airflow container. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.airflowVolumeMounts" -}}
- name: config
  mountPath: {{ include "airflow-azblob.configDir" .root }}
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: logs
  mountPath: {{ include "airflow-azblob.logsFolder" .root }}
{{- if and (eq .root.Values.dags.mode "gitSync") (include "airflow-azblob.needsDags" .) }}
- name: dags
  mountPath: {{ include "airflow-azblob.gitSyncRoot" .root }}
  readOnly: true
{{- end }}
{{- if eq .component "api-server" }}
- name: auth
  mountPath: {{ include "airflow-azblob.authDir" .root }}
{{- end }}
{{- if and (eq .component "scheduler") (eq .root.Values.executor "KubernetesExecutor") }}
- name: pod-template
  mountPath: {{ include "airflow-azblob.podTemplateDir" .root }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes of an Airflow pod. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.airflowVolumes" -}}
{{- $v := .root.Values -}}
- name: config
  configMap:
    name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" "config") }}
- name: tmp
  emptyDir: {}
- name: logs
  emptyDir: {}
{{- if and (eq $v.dags.mode "gitSync") (include "airflow-azblob.needsDags" .) }}
- name: dags
  emptyDir: {}
- name: git-sync-tmp
  emptyDir: {}
{{- if $v.dags.gitSync.ssh.existingSecret }}
- name: git-ssh-key
  secret:
    secretName: {{ $v.dags.gitSync.ssh.existingSecret }}
    defaultMode: 0440
{{- if $v.dags.gitSync.ssh.knownHosts }}
- name: git-known-hosts
  configMap:
    name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" "git-known-hosts") }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .component "api-server" }}
- name: auth
  emptyDir: {}
- name: auth-secret
  secret:
    secretName: {{ include "airflow-azblob.authSecretName" .root }}
    defaultMode: 0440
{{- end }}
{{- if and (eq .component "scheduler") (eq $v.executor "KubernetesExecutor") }}
- name: pod-template
  configMap:
    name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" "pod-template") }}
{{- end }}
{{- end -}}

{{/*
The git-sync container: a sidecar (dag-processor, triggerer) or a one-shot init container (worker pods).
Call with (dict "root" $ "oneShot" true|false).
*/}}
{{- define "airflow-azblob.gitSyncContainer" -}}
{{- $g := .root.Values.dags.gitSync -}}
- name: {{ ternary "git-sync-init" "git-sync" .oneShot }}
  image: {{ include "airflow-azblob.image" .root.Values.images.gitSync }}
  imagePullPolicy: {{ .root.Values.images.gitSync.pullPolicy }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65533
    runAsGroup: 65533
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
  env:
    - name: GITSYNC_REPO
      value: {{ $g.repo | quote }}
    - name: GITSYNC_REF
      value: {{ $g.ref | quote }}
    - name: GITSYNC_ROOT
      value: {{ include "airflow-azblob.gitSyncRoot" .root | quote }}
    - name: GITSYNC_LINK
      value: {{ include "airflow-azblob.gitSyncLink" .root | quote }}
    - name: GITSYNC_DEPTH
      value: {{ $g.depth | quote }}
    - name: GITSYNC_PERIOD
      value: {{ printf "%vs" $g.period | quote }}
    - name: GITSYNC_MAX_FAILURES
      value: {{ $g.maxFailures | quote }}
    - name: GITSYNC_ONE_TIME
      value: {{ ternary "true" "false" .oneShot | quote }}
    {{- if $g.ssh.existingSecret }}
    - name: GITSYNC_SSH_KEY_FILE
      value: /etc/git-secret/ssh
    - name: GITSYNC_SSH_KNOWN_HOSTS
      value: {{ ternary "false" "true" (and $g.ssh.disableKnownHosts (not $g.ssh.knownHosts)) | quote }}
    {{- if $g.ssh.knownHosts }}
    - name: GITSYNC_SSH_KNOWN_HOSTS_FILE
      value: /etc/git-secret/known_hosts
    {{- end }}
    {{- end }}
    {{- if $g.https.existingSecret }}
    - name: GITSYNC_USERNAME
      valueFrom:
        secretKeyRef:
          name: {{ $g.https.existingSecret }}
          key: username
    - name: GITSYNC_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $g.https.existingSecret }}
          key: password
    {{- end }}
  {{- with $g.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: dags
      mountPath: {{ include "airflow-azblob.gitSyncRoot" .root }}
    - name: git-sync-tmp
      mountPath: /tmp
    {{- if $g.ssh.existingSecret }}
    - name: git-ssh-key
      mountPath: /etc/git-secret/ssh
      subPath: {{ $g.ssh.key }}
      readOnly: true
    {{- if $g.ssh.knownHosts }}
    - name: git-known-hosts
      mountPath: /etc/git-secret/known_hosts
      subPath: known_hosts
      readOnly: true
    {{- end }}
    {{- end }}
{{- end -}}

{{/* Init container that waits until the db-migrate Job has brought the schema to this image's version; it stops at once
(include/db_migrate.py) when a newer Airflow has migrated the DB. */}}
{{- define "airflow-azblob.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "airflow-azblob.airflowImage" .root }}
  imagePullPolicy: {{ .root.Values.images.airflow.pullPolicy }}
  args: ["python", "-m", "include.db_migrate", "check-migrations", "--migration-wait-timeout", {{ .root.Values.database.migrationWaitTimeout | quote }}]
  securityContext:
    {{- include "airflow-azblob.containerSecurityContext" .root | nindent 4 }}
  env:
    {{- include "airflow-azblob.airflowEnv" (dict "root" .root "component" "db-migrate") | nindent 4 }}
  volumeMounts:
    {{- include "airflow-azblob.airflowVolumeMounts" (dict "root" .root "component" "db-migrate") | nindent 4 }}
{{- end -}}

{{/*
checksum/* annotations: a change of a ConfigMap or Secret the chart renders rolls every pod that consumes it.
Call with (dict "root" $ "component" <name>).
*/}}
{{- define "airflow-azblob.checksums" -}}
{{- $root := .root -}}
checksum/airflow-config: {{ include (print $root.Template.BasePath "/configmaps/airflow-config.yaml") $root | sha256sum }}
{{- if include "airflow-azblob.azureConnectionCreated" $root }}
checksum/azure-connection: {{ include (print $root.Template.BasePath "/secrets/azure-connection.yaml") $root | sha256sum }}
{{- end }}
{{- if and (eq .component "scheduler") (eq $root.Values.executor "KubernetesExecutor") }}
checksum/pod-template: {{ include (print $root.Template.BasePath "/configmaps/pod-template.yaml") $root | sha256sum }}
{{- end }}
{{- if and (eq $root.Values.dags.mode "gitSync") $root.Values.dags.gitSync.ssh.knownHosts (include "airflow-azblob.needsDags" .) }}
checksum/git-known-hosts: {{ include (print $root.Template.BasePath "/configmaps/git-known-hosts.yaml") $root | sha256sum }}
{{- end }}
{{- if has .component (list "api-server" "scheduler" "dag-processor" "triggerer") }}
checksum/secrets: {{ include "airflow-azblob.secretInputs" $root | sha256sum }}
{{- end }}
{{- end -}}

{{/*
What decides the content of the Secrets the chart generates (which Secret, which key, which users, which DB URL),
never the content itself: a generated value is random in every render until lookup finds the kept one, so hashing
it would roll every pod on the first upgrade after an install (and on every `helm template`).
*/}}
{{- define "airflow-azblob.secretInputs" -}}
{{- $v := .Values -}}
{{- dict "secrets" $v.secrets "auth" $v.auth "database" $v.database "postgresql" (pick $v.postgresql "enabled" "username" "database") | toJson -}}
{{- end -}}

{{/*
Deployment of a long-running Airflow component without a Service (scheduler, dag-processor, triggerer).
Call with (dict "root" $ "component" <name> "values" <component values> "args" <list> "jobType" <airflow job type>).
*/}}
{{- define "airflow-azblob.componentDeployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "component" .component "values" $v -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "airflow-azblob.componentName" $ctx }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
spec:
  replicas: {{ $v.replicas }}
  selector:
    matchLabels:
      {{- include "airflow-azblob.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "airflow-azblob.podLabels" (merge (dict "airflow" true "podLabels" $v.podLabels) $ctx) | nindent 8 }}
      annotations:
        {{- include "airflow-azblob.checksums" $ctx | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "airflow-azblob.serviceAccountName" $ctx }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "airflow-azblob.podSecurityContext" $root | nindent 8 }}
      initContainers:
        {{- include "airflow-azblob.waitForMigrations" $ctx | nindent 8 }}
        {{- if and (eq $root.Values.dags.mode "gitSync") (include "airflow-azblob.needsDags" $ctx) }}
        {{- /* The first sync completes before Airflow starts: a first scan of an empty folder would deactivate every DAG. */}}
        {{- include "airflow-azblob.gitSyncContainer" (dict "root" $root "oneShot" true) | nindent 8 }}
        {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "airflow-azblob.airflowImage" $root }}
          imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
          args: {{ toJson .args }}
          {{- with include "airflow-azblob.logServer" $ctx | fromYaml }}
          ports:
            - name: logs
              containerPort: {{ .port }}
          {{- end }}
          env:
            {{- include "airflow-azblob.airflowEnv" $ctx | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            exec:
              command: ["airflow", "jobs", "check", "--job-type", {{ .jobType | quote }}, "--local"]
            initialDelaySeconds: 60
            periodSeconds: 60
            timeoutSeconds: 45
            failureThreshold: 5
          securityContext:
            {{- include "airflow-azblob.containerSecurityContext" $root | nindent 12 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- include "airflow-azblob.airflowVolumeMounts" $ctx | nindent 12 }}
        {{- if and (eq $root.Values.dags.mode "gitSync") (include "airflow-azblob.needsDags" $ctx) }}
        {{- include "airflow-azblob.gitSyncContainer" (dict "root" $root "oneShot" false) | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "airflow-azblob.airflowVolumes" $ctx | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/*
A helm test Pod running a script of chart/files/scripts/ with the image's python.
Call with (dict "root" $ "name" <test name> "script" <file> "args" <list> "component" <env profile>).
*/}}
{{- define "airflow-azblob.testPod" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component "helmTest" true -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "airflow-azblob.componentName" (dict "root" $root "component" (printf "test-%s" .name)) }}
  labels:
    {{- include "airflow-azblob.podLabels" (dict "root" $root "component" "test" "airflow" true) | nindent 4 }}
  annotations:
    helm.sh/hook: test
    {{- /* Not hook-succeeded: Helm < 3.20 deletes the pod before `helm test --logs` reads it. The pod stays until
    the next `helm test` (scripts/deploy deletes it after showing its log). */}}
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "airflow-azblob.serviceAccountName" (dict "root" $root "component" "worker" "values" $root.Values.workers) }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "airflow-azblob.podSecurityContext" $root | nindent 4 }}
  containers:
    - name: test
      image: {{ include "airflow-azblob.airflowImage" $root }}
      imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
      args: {{ concat (list "python" "-c" ($root.Files.Get (printf "files/scripts/%s" .script))) .args | toJson }}
      env:
        {{- include "airflow-azblob.airflowEnv" $ctx | nindent 8 }}
      securityContext:
        {{- include "airflow-azblob.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        {{- include "airflow-azblob.airflowVolumeMounts" $ctx | nindent 8 }}
  volumes:
    {{- include "airflow-azblob.airflowVolumes" $ctx | nindent 4 }}
{{- end -}}

{{/* An ingress NetworkPolicy for one component. Call with (dict "root" $ "component" <name> "ingress" <rules>). */}}
{{- define "airflow-azblob.networkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" .component) }}
  labels:
    {{- include "airflow-azblob.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "airflow-azblob.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    {{- toYaml .ingress | nindent 4 }}
{{- end -}}
