{{/*
Where things are: paths inside the image (the Dockerfile's layout), the DAGs folder of every pod, and the
endpoints one component reaches another at.
*/}}

{{/* ------------------------------------------------------------------------ paths inside the image */}}

{{/* AIRFLOW_HOME of the image (the Dockerfile's apache/airflow base). */}}
{{- define "airflow-azblob.airflowHome" -}}/opt/airflow{{- end -}}

{{/* PYTHONPATH that makes include.azblob_xcom_backend importable: the image copies include/ to <this>/include. */}}
{{- define "airflow-azblob.pythonPath" -}}/opt/airflow{{- end -}}

{{/* [core] plugins_folder: the image copies include/plugins there (include/plugins/task_termination.py). */}}
{{- define "airflow-azblob.pluginsFolder" -}}{{ include "airflow-azblob.pythonPath" . }}/include/plugins{{- end -}}

{{/* [fab] config_file: FAB's settings file in the image (include/webserver_config.py, read with auth.manager fab). */}}
{{- define "airflow-azblob.fabConfigFile" -}}{{ include "airflow-azblob.pythonPath" . }}/include/webserver_config.py{{- end -}}

{{/* Where the image bakes DAGs (dags.mode image). */}}
{{- define "airflow-azblob.imageDagsFolder" -}}/opt/airflow/dags{{- end -}}

{{/* Directory of the airflow.cfg ConfigMap mount; AIRFLOW_CONFIG points at airflow.cfg inside it. */}}
{{- define "airflow-azblob.configDir" -}}/opt/airflow/config{{- end -}}

{{- define "airflow-azblob.logsFolder" -}}/opt/airflow/logs{{- end -}}

{{/* Writable copy of the SimpleAuthManager passwords file (the manager opens it read-write). */}}
{{- define "airflow-azblob.authDir" -}}/opt/airflow/auth{{- end -}}

{{/* Where the auth Secret (passwords.json) is mounted read-only. */}}
{{- define "airflow-azblob.authSecretDir" -}}/opt/airflow/auth-secret{{- end -}}

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

{{/* ------------------------------------------------------------------------------------- endpoints */}}

{{- define "airflow-azblob.apiServerServiceName" -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "api-server") -}}
{{- end -}}

{{/* Path of [api] base_url without a trailing slash ("" when the UI is served at the root). */}}
{{- define "airflow-azblob.basePath" -}}
{{- $baseUrl := dig "api" "base_url" "" .Values.config -}}
{{- if $baseUrl -}}{{- (urlParse $baseUrl).path | trimSuffix "/" -}}{{- end -}}
{{- end -}}

{{/*
Where users open the UI, as YAML {url, scheme, host, path}: config.api.base_url when set (the api-server serves under
its path); otherwise what the ingress (ingress.host, TLS) or the Gateway route (its first hostname) says, at the root.
host is a name without a port ("" when nothing names one); path has no trailing slash ("" at the root). _validation.tpl refuses an ingress or
route that disagrees with base_url.
*/}}
{{- define "airflow-azblob.publicUrl" -}}
{{- $v := .Values -}}
{{- $baseUrl := dig "api" "base_url" "" ($v.config | default dict) -}}
{{- if $baseUrl -}}
{{- $u := urlParse $baseUrl -}}
scheme: {{ $u.scheme }}
host: {{ regexReplaceAll ":[0-9]+$" $u.host "" | lower | quote }}
path: {{ include "airflow-azblob.basePath" . | quote }}
url: {{ printf "%s://%s%s/" $u.scheme $u.host (include "airflow-azblob.basePath" .) | quote }}
{{- else -}}
{{- $host := "" -}}
{{- if $v.ingress.enabled }}{{ $host = $v.ingress.host }}{{ else if $v.httpRoute.enabled }}{{ $host = first ($v.httpRoute.hostnames | default (list "")) }}{{ end -}}
{{- $scheme := ternary "https" "http" (and $v.ingress.enabled $v.ingress.tls.enabled) -}}
scheme: {{ $scheme }}
host: {{ $host | quote }}
path: ""
url: {{ ternary (printf "%s://%s/" $scheme $host) "" (ne $host "") | quote }}
{{- end -}}
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

{{/* statsd_exporter: the UDP port Airflow sends StatsD to, and the port Prometheus scrapes. */}}
{{- define "airflow-azblob.statsdPort" -}}9125{{- end -}}
{{- define "airflow-azblob.metricsPort" -}}9102{{- end -}}

{{/*
PromQL: how much a counter selection (.series) grew over .window, summed, including series that first appeared inside
the window (increase() reads a new series' first sample as its start, so a counter the statsd_exporter creates at its
first event would show no growth: that part is the sum of the series not there .window ago).
*/}}
{{- define "airflow-azblob.increase" -}}
((sum(increase({{ .series }}[{{ .window }}])) or vector(0)) + (sum({{ .series }} unless {{ .series }} offset {{ .window }}) or vector(0)))
{{- end -}}
