{{/*
airflow.cfg: the keys the chart computes from values, the ones it refuses in config:, and the rendered file.
*/}}

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
