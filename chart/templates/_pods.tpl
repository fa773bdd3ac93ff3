{{/*
Building blocks of every Airflow pod: what a component needs, security contexts, environment, volumes, the
git-sync container, the wait for migrations, and the checksum annotations that roll pods on a change.
*/}}

{{/* ------------------------------------------------------------------------ what a component needs */}}

{{/* Does this component need the DAG files on disk (git-sync sidecar)? Call with (dict "root" $ "component" ...). */}}
{{- define "airflow-azblob.needsDags" -}}
{{- if or (has .component (list "dag-processor" "triggerer" "worker")) (and (eq .component "scheduler") (eq .root.Values.executor "LocalExecutor")) -}}true{{- end -}}
{{- end -}}

{{/* Do tasks run in this component's pods? The workers', or the scheduler's with the LocalExecutor. Call with
(dict "root" $ "component" ...). */}}
{{- define "airflow-azblob.runsTasks" -}}
{{- if or (eq .component "worker") (and (eq .component "scheduler") (eq .root.Values.executor "LocalExecutor")) -}}true{{- end -}}
{{- end -}}

{{/* --------------------------------------------------------------------------- pod building blocks */}}

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
Components: api-server, scheduler, dag-processor, triggerer, worker, db-migrate, db-cleanup, create-containers, and
the helm tests' env profiles.
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
