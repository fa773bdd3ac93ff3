{{/*
airflow.cfg: the one table of the keys the chart owns, the rendered file, and one value's formatting.
*/}}

{{/* [core] xcom_backend: the backend baked into the image, or Airflow's own when xcom.enabled is false. */}}
{{- define "airflow-azblob.xcomBackend" -}}
{{- ternary "include.azblob_xcom_backend.WasbXComBackend" "airflow.sdk.bases.xcom.BaseXCom" .Values.xcom.enabled -}}
{{- end -}}

{{/*
Every airflow.cfg key the chart owns, as section -> key -> {set, when, value} or {set, env}:
  set    the value a user sets instead (a key of this table in `config:` fails at render, naming it);
  when   whether these values render the key into airflow.cfg (with `value`); a key that is not rendered is still
         owned: setting it in `config:` would contradict the value that switched it off;
  env    the key reaches the pods as this environment variable from a Secret, never through the ConfigMap.
Adding a computed key means one line here: the render and the refusal both read it (tests/chart walks every key).
*/}}
{{- define "airflow-azblob.ownedConfig" -}}
{{- $v := .Values -}}
{{- $xcom := $v.xcom.enabled -}}
{{- $remote := $v.logs.remote.enabled -}}
{{- $kube := has "KubernetesExecutor" (splitList "," $v.executor) -}}
{{- $local := has "LocalExecutor" (splitList "," $v.executor) -}}
{{- $bundle := eq $v.dags.mode "gitBundle" -}}
{{- $simple := eq $v.auth.manager "simple" -}}
{{- $fab := eq $v.auth.manager "fab" -}}
{{- $oidc := and $fab $v.auth.oidc.enabled -}}
{{- $metrics := $v.metrics.enabled -}}
core:
  auth_manager: {set: auth.manager, when: true, value: {{ include "airflow-azblob.authManager" . | toJson }}}
  executor: {set: executor, when: true, value: {{ toJson $v.executor }}}
  dags_folder: {set: dags.mode and dags.gitSync.subPath, when: true, value: {{ include "airflow-azblob.dagsFolder" . | toJson }}}
  plugins_folder: {set: the image (add plugins to include/plugins), when: true, value: {{ include "airflow-azblob.pluginsFolder" . | toJson }}}
  execution_api_server_url: {set: "apiServer.internalUrl (or [api] base_url for a sub-path)", when: true, value: {{ include "airflow-azblob.executionApiUrl" . | toJson }}}
  xcom_backend: {set: xcom.enabled, when: true, value: {{ include "airflow-azblob.xcomBackend" . | toJson }}}
  simple_auth_manager_users: {set: auth.users, when: {{ $simple }}, value: {{ join "," $v.auth.users | toJson }}}
  simple_auth_manager_passwords_file: {set: auth.existingSecret, when: {{ $simple }}, value: {{ printf "%s/passwords.json" (include "airflow-azblob.authDir" .) | toJson }}}
  default_timezone: {set: timezone, when: true, value: {{ toJson $v.timezone }}}
  fernet_key: {set: secrets.fernetKey.existingSecret, env: AIRFLOW__CORE__FERNET_KEY}
azblob_xcom:
  conn_id: {set: azure.connection.id, when: {{ $xcom }}, value: {{ toJson $v.azure.connection.id }}}
  container: {set: xcom.container, when: {{ $xcom }}, value: {{ toJson $v.xcom.container }}}
  prefix: {set: xcom.prefix, when: {{ $xcom }}, value: {{ toJson $v.xcom.prefix }}}
  threshold: {set: xcom.threshold, when: {{ $xcom }}, value: {{ toJson $v.xcom.threshold }}}
  compression: {set: xcom.compression, when: {{ $xcom }}, value: {{ toJson $v.xcom.compression }}}
  max_concurrency: {set: xcom.maxConcurrency, when: {{ $xcom }}, value: {{ toJson $v.xcom.maxConcurrency }}}
  retries: {set: xcom.retries, when: {{ $xcom }}, value: {{ toJson $v.xcom.retries }}}
  preview_rows: {set: xcom.previewRows, when: {{ $xcom }}, value: {{ toJson $v.xcom.previewRows }}}
logging:
  base_log_folder: {set: "logs.remote.* (locally, every pod writes to an emptyDir at the image's log folder)", when: true, value: {{ include "airflow-azblob.logsFolder" . | toJson }}}
  remote_logging: {set: logs.remote.enabled, when: true, value: {{ $remote }}}
  {{- /* The task handler deletes a task's whole local log folder after the upload: safe where each worker pod has its
  own (KubernetesExecutor), not where tasks share one (the LocalExecutor's scheduler lost a retried task's first
  log that way, so any LocalExecutor lane keeps them). Deleting keeps the triggerer's folder, and kept failed worker
  pods, from growing for ever. */}}
  delete_local_logs: {set: "logs.remote.enabled (deleted after upload with the KubernetesExecutor alone)", when: true, value: {{ and $remote (not $local) }}}
  remote_base_log_folder: {set: logs.remote.prefix, when: {{ $remote }}, value: {{ printf "wasb://%s" (trimAll "/" $v.logs.remote.prefix) | toJson }}}
  remote_log_conn_id: {set: logs.remote.connectionId, when: {{ $remote }}, value: {{ include "airflow-azblob.logsConnectionId" . | toJson }}}
azure_remote_logging:
  remote_wasb_log_container: {set: logs.remote.container, when: {{ $remote }}, value: {{ toJson $v.logs.remote.container }}}
kubernetes_executor:
  pod_template_file: {set: "workers.*", when: {{ $kube }}, value: {{ printf "%s/pod_template_file.yaml" (include "airflow-azblob.podTemplateDir" .) | toJson }}}
  namespace: {set: "the release namespace (helm --namespace)", when: {{ $kube }}, value: {{ toJson .Release.Namespace }}}
  worker_container_repository: {set: images.airflow.repository, when: {{ $kube }}, value: {{ toJson $v.images.airflow.repository }}}
  worker_container_tag: {set: images.airflow.tag and .digest, when: {{ $kube }}, value: {{ include "airflow-azblob.imageTag" $v.images.airflow | toJson }}}
api:
  secret_key: {set: secrets.apiSecretKey.existingSecret, env: AIRFLOW__API__SECRET_KEY}
api_auth:
  jwt_secret: {set: secrets.jwtSecret.existingSecret, env: AIRFLOW__API_AUTH__JWT_SECRET}
database:
  sql_alchemy_conn: {set: database.existingSecret, env: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN}
  sql_alchemy_conn_async: {set: database.existingSecretAsyncKey, env: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC}
dag_processor:
  dag_bundle_config_list: {set: "dags.mode gitBundle and dags.gitBundle.*", when: {{ $bundle }}, value: {{ include "airflow-azblob.gitBundleConfig" . | toJson }}}
fab:
  config_file: {set: "auth.manager fab (the image's include/webserver_config.py)", when: {{ $fab }}, value: {{ include "airflow-azblob.fabConfigFile" . | toJson }}}
oidc:
  enabled: {set: auth.oidc.enabled, when: {{ $fab }}, value: {{ $oidc }}}
  name: {set: auth.oidc.name, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.name }}}
  client_id: {set: auth.oidc.clientId, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.clientId }}}
  client_secret: {set: auth.oidc.clientSecret.existingSecret, env: AIRFLOW__OIDC__CLIENT_SECRET}
  metadata_url: {set: "auth.oidc.metadataUrl (or tenantId)", when: {{ and $oidc (include "airflow-azblob.oidcMetadataUrl" . | ne "") }}, value: {{ include "airflow-azblob.oidcMetadataUrl" . | toJson }}}
  {{- range $key, $value := dict "issuer" "issuer" "authorize_url" "authorizeUrl" "token_url" "tokenUrl" "jwks_url" "jwksUrl" "userinfo_url" "userinfoUrl" }}
  {{ $key }}: {set: auth.oidc.endpoints.{{ $value }}, when: {{ and $oidc (hasKey $v.auth.oidc.endpoints $value) }}, value: {{ get $v.auth.oidc.endpoints $value | default "" | toJson }}}
  {{- end }}
  scope: {set: auth.oidc.scope, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.scope }}}
  username_claim: {set: auth.oidc.usernameClaim, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.usernameClaim }}}
  roles_claim: {set: auth.oidc.rolesClaim, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.rolesClaim }}}
  roles_mapping: {set: auth.oidc.rolesMapping, when: {{ $oidc }}, value: {{ $v.auth.oidc.rolesMapping | toJson | toJson }}}
  registration_role: {set: auth.oidc.registrationRole, when: {{ $oidc }}, value: {{ toJson $v.auth.oidc.registrationRole }}}
metrics:
  statsd_on: {set: metrics.enabled, when: true, value: {{ $metrics }}}
  statsd_host: {set: "metrics.enabled (the chart's statsd_exporter)", when: {{ $metrics }}, value: {{ include "airflow-azblob.componentName" (dict "root" . "component" "statsd-exporter") | toJson }}}
  statsd_port: {set: "metrics.enabled (the chart's statsd_exporter)", when: {{ $metrics }}, value: {{ include "airflow-azblob.statsdPort" . }}}
  statsd_prefix: {set: "metrics.enabled (metric names start airflow_)", when: {{ $metrics }}, value: "airflow"}
  {{- /* Tags (dag_id, task_id, state, ...) the exporter turns into labels, and no legacy names with ids inside. */}}
  statsd_influxdb_enabled: {set: "metrics.enabled (tags become Prometheus labels)", when: {{ $metrics }}, value: true}
  legacy_names_on: {set: "metrics.enabled (labelled names only)", when: {{ $metrics }}, value: false}
alerts:
  webhook_url: {set: "alerts.webhook.existingSecret (a Secret, never a ConfigMap)", env: AIRFLOW__ALERTS__WEBHOOK_URL}
  on_retry: {set: alerts.onRetry, when: true, value: {{ $v.alerts.onRetry }}}
  timeout: {set: alerts.timeoutSeconds, when: true, value: {{ toJson $v.alerts.timeoutSeconds }}}
{{- end -}}

{{/* [core] auth_manager of auth.manager. */}}
{{- define "airflow-azblob.authManager" -}}
{{- if eq .Values.auth.manager "fab" -}}
include.fab_auth_manager.OidcFabAuthManager
{{- else -}}
airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
{{- end -}}
{{- end -}}

{{/* [oidc] metadata_url: auth.oidc.metadataUrl, or Entra ID's document for auth.oidc.tenantId ("" for neither). */}}
{{- define "airflow-azblob.oidcMetadataUrl" -}}
{{- $o := .Values.auth.oidc -}}
{{- if $o.metadataUrl -}}
{{- $o.metadataUrl -}}
{{- else if $o.tenantId -}}
{{- printf "https://login.microsoftonline.com/%s/v2.0/.well-known/openid-configuration" $o.tenantId -}}
{{- end -}}
{{- end -}}

{{/* [dag_processor] dag_bundle_config_list of dags.mode gitBundle: one GitDagBundle named dags, as JSON. */}}
{{- define "airflow-azblob.gitBundleConfig" -}}
{{- $g := .Values.dags.gitBundle -}}
{{- $kwargs := dict "repo_url" $g.repoUrl "tracking_ref" $g.trackingRef "refresh_interval" (int $g.refreshInterval) -}}
{{- with $g.subdir }}{{ $_ := set $kwargs "subdir" . }}{{ end -}}
{{- with $g.connectionId }}{{ $_ := set $kwargs "git_conn_id" . }}{{ end -}}
{{- list (dict "name" "dags" "classpath" "airflow.providers.git.bundles.git.GitDagBundle" "kwargs" $kwargs) | toJson -}}
{{- end -}}

{{/* One airflow.cfg value: booleans as True/False, whole numbers without an exponent. */}}
{{- define "airflow-azblob.cfgValue" -}}
{{- if kindIs "bool" . -}}{{ ternary "True" "False" . }}
{{- else if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}{{ int64 . }}
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/* airflow.cfg: the config: values plus the owned keys these values render, sections and keys sorted. A config:
key the chart owns never gets here: airflow-azblob.validate refuses it first. */}}
{{- define "airflow-azblob.airflowConfig" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- range $section, $keys := (include "airflow-azblob.ownedConfig" . | fromYaml) -}}
{{- range $key, $owned := $keys -}}
{{- if $owned.when -}}
{{- $_ := set $cfg $section (set (get $cfg $section | default dict) $key $owned.value) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $section := keys $cfg | sortAlpha }}
{{- if $i }}{{ "\n\n" }}{{ end -}}
[{{ $section }}]
{{- range $key, $value := get $cfg $section }}
{{ $key }} = {{ include "airflow-azblob.cfgValue" $value }}
{{- end }}
{{- end }}
{{- end -}}
