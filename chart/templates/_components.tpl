{{/*
The component table: what each kind of Airflow pod of the release is and gets. Every helper that decides "who gets
what" (environment, volumes, git-sync, ServiceAccounts, Roles, NetworkPolicy peers, checksums) reads this table;
adding a component or a Job is one entry here plus its template.
*/}}

{{/*
component -> facts, as YAML:
  values          the key of .Values with the pods' settings (resources, nodeSelector, tolerations, affinity,
                  podLabels, podAnnotations, extraEnv); none: the chart's defaults
  serviceAccount  the component whose ServiceAccount the pods run as (a component that names itself has its own)
  deployment      a long-running Deployment: git-sync runs as a sidecar, and Secret changes roll it
  db              the metadata DB URL and the Fernet key
  apiSecret       [api] secret_key (UI sessions, log-server requests)
  jwt             [api_auth] jwt_secret (the scheduler signs task tokens, the api-server checks them)
  dags            the DAG files on disk (git-sync in dags.mode gitSync)
  runsTasks       task processes run in these pods (the pod operator's connection and Role go there): the worker
                  pods with the KubernetesExecutor, the scheduler with the LocalExecutor, both with both
  alerts          the failure-alert webhook (include/plugins/failure_alerts.py)
  passwords       the SimpleAuthManager passwords file (a writable copy of the auth Secret's)
  oidc            the OIDC client secret (auth.oidc; the db-migrate Job gets it too, as it creates the FAB admin)
  podTemplate     the KubernetesExecutor's worker pod template
  kubeApi         a Kubernetes API token in the pods (automountServiceAccountToken): the scheduler and the api-server
                  with the KubernetesExecutor (worker pods, their logs), and whoever runs tasks with
                  workers.podOperator; every other pod gets none
  logServerPort   the log server the api-server reads from (config.logging's port), if any
  logServerPolicy its NetworkPolicy admits nothing but the api-server, to its log server (the api-server, Azurite
                  and PostgreSQL have policies of their own)
*/}}
{{- define "airflow-azblob.components" -}}
{{- $executors := splitList "," .Values.executor -}}
{{- $kube := has "KubernetesExecutor" $executors -}}
{{- $local := has "LocalExecutor" $executors -}}
{{- $steps := .Values.workers.podOperator.enabled -}}
{{- $logging := .Values.config.logging | default dict -}}
{{- $fab := eq .Values.auth.manager "fab" -}}
{{- $oidc := and $fab .Values.auth.oidc.enabled -}}
api-server:
  values: apiServer
  serviceAccount: api-server
  kubeApi: {{ $kube }}
  deployment: true
  db: true
  apiSecret: true
  jwt: true
  passwords: {{ not $fab }}
  oidc: {{ $oidc }}
scheduler:
  values: scheduler
  logServerPolicy: true
  serviceAccount: scheduler
  kubeApi: {{ or $kube $steps }}
  deployment: true
  db: true
  apiSecret: true
  jwt: true
  alerts: true
  dags: {{ $local }}
  runsTasks: {{ $local }}
  podTemplate: {{ $kube }}
  {{- if $local }}
  logServerPort: {{ dig "worker_log_server_port" 8793 $logging | int }}
  {{- end }}
dag-processor:
  values: dagProcessor
  logServerPolicy: true
  serviceAccount: dag-processor
  deployment: true
  db: true
  apiSecret: true
  dags: true
triggerer:
  values: triggerer
  logServerPolicy: true
  serviceAccount: triggerer
  deployment: true
  db: true
  apiSecret: true
  dags: true
  logServerPort: {{ dig "trigger_log_server_port" 8794 $logging | int }}
worker:
  values: workers
  logServerPolicy: true
  serviceAccount: worker
  kubeApi: {{ $steps }}
  dags: true
  runsTasks: {{ $kube }}
  alerts: true
db-migrate:
  values: jobs
  serviceAccount: worker
  db: true
db-cleanup:
  values: jobs
  serviceAccount: worker
  db: true
create-containers:
  values: jobs
  serviceAccount: worker
test:
  values: jobs
  serviceAccount: worker
{{- end -}}

{{/* One component's facts (YAML; read with fromYaml). Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.component" -}}
{{- $table := include "airflow-azblob.components" .root | fromYaml -}}
{{- if not (hasKey $table .component) -}}
{{- fail (printf "chart bug: %q is not in the component table (templates/_components.tpl)" .component) -}}
{{- end -}}
{{- get $table .component | toYaml -}}
{{- end -}}

{{/* The components whose pods run tasks, as a JSON list (read with fromJsonArray): see runsTasks above. */}}
{{- define "airflow-azblob.taskRunners" -}}
{{- $runners := list -}}
{{- range $name, $c := include "airflow-azblob.components" . | fromYaml }}{{ if $c.runsTasks }}{{ $runners = append $runners $name }}{{ end }}{{ end -}}
{{- toJson $runners -}}
{{- end -}}

{{/* A component's values block (see "values" above), or an empty one. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.componentValues" -}}
{{- $c := include "airflow-azblob.component" . | fromYaml -}}
{{- if $c.values }}{{ index .root.Values $c.values | toYaml }}{{ end -}}
{{- end -}}

{{/* The ServiceAccount a component's pods run as. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.serviceAccountName" -}}
{{- $owner := (include "airflow-azblob.component" . | fromYaml).serviceAccount -}}
{{- $sa := (include "airflow-azblob.componentValues" (dict "root" .root "component" $owner) | fromYaml).serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "airflow-azblob.componentName" (dict "root" .root "component" $owner)) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}
