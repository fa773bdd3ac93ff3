{{/*
Every Airflow pod: the one pod spec macro (Deployments, Jobs, the CronJob, helm tests and the worker pod template)
and its building blocks: security contexts, environment, volumes, the git-sync container, the wait for migrations,
and the checksum annotations that roll pods on a change. What each component gets comes from _components.tpl.
*/}}

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

{{/* Environment of an Airflow container of a component of the table. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.airflowEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := include "airflow-azblob.component" . | fromYaml -}}
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
{{- if $c.db }}
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
{{- if $c.apiSecret }}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.apiSecretKeySecretName" $root }}
      key: {{ $v.secrets.apiSecretKey.key }}
{{- end }}
{{- if $c.jwt }}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow-azblob.jwtSecretName" $root }}
      key: {{ $v.secrets.jwtSecret.key }}
{{- end }}
{{- /* Failure alerts come from the task processes and the scheduler (include/plugins/failure_alerts.py). */}}
{{- if and $v.alerts.webhook.existingSecret $c.alerts }}
- name: AIRFLOW__ALERTS__WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.alerts.webhook.existingSecret }}
      key: {{ $v.alerts.webhook.key }}
{{- end }}
{{- if $c.oidc }}
{{- include "airflow-azblob.oidcSecretEnv" $root | nindent 0 }}
{{- end }}
{{- if and $v.workers.podOperator.enabled $c.runsTasks }}
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
{{- $c := include "airflow-azblob.component" . | fromYaml -}}
- name: config
  mountPath: {{ include "airflow-azblob.configDir" .root }}
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: logs
  mountPath: {{ include "airflow-azblob.logsFolder" .root }}
{{- if and (eq .root.Values.dags.mode "gitSync") $c.dags }}
- name: dags
  mountPath: {{ include "airflow-azblob.gitSyncRoot" .root }}
  readOnly: true
{{- end }}
{{- if $c.passwords }}
- name: auth
  mountPath: {{ include "airflow-azblob.authDir" .root }}
{{- end }}

{{- if $c.podTemplate }}
- name: pod-template
  mountPath: {{ include "airflow-azblob.podTemplateDir" .root }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes of an Airflow pod. Call with (dict "root" $ "component" <name>). */}}
{{- define "airflow-azblob.airflowVolumes" -}}
{{- $v := .root.Values -}}
{{- $c := include "airflow-azblob.component" . | fromYaml -}}
- name: config
  configMap:
    name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" "config") }}
- name: tmp
  emptyDir: {sizeLimit: {{ $v.emptyDirSizeLimits.tmp }}}
- name: logs
  emptyDir: {sizeLimit: {{ $v.emptyDirSizeLimits.logs }}}
{{- if and (eq $v.dags.mode "gitSync") $c.dags }}
- name: dags
  emptyDir: {sizeLimit: {{ $v.emptyDirSizeLimits.dags }}}
- name: git-sync-tmp
  emptyDir: {sizeLimit: {{ $v.emptyDirSizeLimits.tmp }}}
{{- if $v.dags.gitSync.sparseCheckout }}
- name: git-sparse-checkout
  configMap:
    name: {{ include "airflow-azblob.componentName" (dict "root" .root "component" "git-sparse-checkout") }}
{{- end }}
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
{{- if $c.passwords }}
- name: auth
  emptyDir: {sizeLimit: 1Mi}
{{- end }}
{{- if $c.passwords }}
- name: auth-secret
  secret:
    secretName: {{ include "airflow-azblob.authSecretName" .root }}
    defaultMode: 0440
{{- end }}
{{- if $c.podTemplate }}
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
    {{- if $g.sparseCheckout }}
    - name: GITSYNC_FILTER
      value: blob:none
    - name: GITSYNC_SPARSE_CHECKOUT_FILE
      value: /etc/git-sync/sparse-checkout
    {{- end }}
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
    {{- if $g.sparseCheckout }}
    - name: git-sparse-checkout
      mountPath: /etc/git-sync
      readOnly: true
    {{- end }}
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
  {{- /* The pod's own container's resources: the wait imports Airflow as it does, and never adds to the pod's request. */}}
  {{- with (include "airflow-azblob.componentValues" . | fromYaml).resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
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
{{- $c := include "airflow-azblob.component" . | fromYaml -}}
checksum/airflow-config: {{ include (print $root.Template.BasePath "/configmaps/airflow-config.yaml") $root | sha256sum }}
{{- if include "airflow-azblob.azureConnectionCreated" $root }}
checksum/azure-connection: {{ include (print $root.Template.BasePath "/secrets/azure-connection.yaml") $root | sha256sum }}
{{- end }}
{{- if $c.podTemplate }}
checksum/pod-template: {{ include (print $root.Template.BasePath "/configmaps/pod-template.yaml") $root | sha256sum }}
{{- end }}
{{- if and (eq $root.Values.dags.mode "gitSync") $root.Values.dags.gitSync.ssh.knownHosts $c.dags }}
checksum/git-known-hosts: {{ include (print $root.Template.BasePath "/configmaps/git-known-hosts.yaml") $root | sha256sum }}
{{- end }}
{{- if and (eq $root.Values.dags.mode "gitSync") $root.Values.dags.gitSync.sparseCheckout $c.dags }}
checksum/git-sparse-checkout: {{ include (print $root.Template.BasePath "/configmaps/git-sparse-checkout.yaml") $root | sha256sum }}
{{- end }}
{{- if $c.deployment }}
checksum/secrets: {{ include "airflow-azblob.secretInputs" $root | sha256sum }}
{{- end }}
{{- end -}}

{{/* ------------------------------------------------------------------------------ the pod spec macro */}}

{{/*
The spec of every Airflow pod: the component Deployments', the per-revision Jobs', the db-cleanup CronJob's, the helm
tests' and the KubernetesExecutor's worker pod template. Call with (dict "root" $ "component" <name in the component
table> "container" (dict "name" <container name> and optionally "args" <list>, "ports" <list: instead of the
component's log server port>, "probes" <YAML>, "env" <list of extra variables>)) and optionally:
  "restartPolicy"      Never or OnFailure (a Deployment's pods: none)
  "waitForMigrations"  true: an init container first waits until the db-migrate Job has migrated the schema
  "initContainers"     YAML list run after that wait (and before git-sync's first clone)
  "spread"             true: several replicas, so a soft pod anti-affinity per node unless the values set one
The component's values block (_components.tpl) gives resources, extraEnv, nodeSelector, tolerations, affinity,
topologySpreadConstraints and the extension points (extraInitContainers, extraContainers, extraVolumes,
extraVolumeMounts and extraEnvFrom of the main container; templated with tpl);
with dags.mode gitSync, a component with DAG files gets a one-shot clone before Airflow starts, and a Deployment a
git-sync sidecar.
*/}}
{{- define "airflow-azblob.airflowPodSpec" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $c := include "airflow-azblob.component" $ctx | fromYaml -}}
{{- $v := dict -}}
{{- with $c.values }}{{ $v = index $root.Values . }}{{ end -}}
{{- $gitSync := and (eq $root.Values.dags.mode "gitSync") $c.dags -}}
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
serviceAccountName: {{ include "airflow-azblob.serviceAccountName" $ctx }}
automountServiceAccountToken: {{ $c.kubeApi | default false }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "airflow-azblob.podSecurityContext" $root | nindent 2 }}
{{- if or .waitForMigrations .initContainers $gitSync $v.extraInitContainers }}
initContainers:
  {{- if .waitForMigrations }}
  {{- include "airflow-azblob.waitForMigrations" $ctx | nindent 2 }}
  {{- end }}
  {{- with .initContainers }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- if $gitSync }}
  {{- /* The first sync completes before Airflow starts: a first scan of an empty folder would deactivate every DAG. */}}
  {{- include "airflow-azblob.gitSyncContainer" (dict "root" $root "oneShot" true) | nindent 2 }}
  {{- end }}
  {{- with $v.extraInitContainers }}
  {{- tpl (toYaml .) $root | nindent 2 }}
  {{- end }}
{{- end }}
containers:
  - name: {{ .container.name }}
    image: {{ include "airflow-azblob.airflowImage" $root }}
    imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
    {{- with .container.args }}
    args: {{ toJson . }}
    {{- end }}
    {{- $ports := .container.ports }}
    {{- if and (not $ports) $c.logServerPort }}
    {{- $ports = list (dict "name" "logs" "containerPort" (int $c.logServerPort)) }}
    {{- end }}
    {{- with $ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    env:
      {{- include "airflow-azblob.airflowEnv" $ctx | nindent 6 }}
      {{- with .container.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with $v.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $v.extraEnvFrom }}
    envFrom:
      {{- tpl (toYaml .) $root | nindent 6 }}
    {{- end }}
    {{- with .container.probes }}
    {{- . | nindent 4 }}
    {{- end }}
    securityContext:
      {{- include "airflow-azblob.containerSecurityContext" $root | nindent 6 }}
    {{- with $v.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      {{- include "airflow-azblob.airflowVolumeMounts" $ctx | nindent 6 }}
      {{- with $v.extraVolumeMounts }}
      {{- tpl (toYaml .) $root | nindent 6 }}
      {{- end }}
  {{- if and $gitSync $c.deployment }}
  {{- include "airflow-azblob.gitSyncContainer" (dict "root" $root "oneShot" false) | nindent 2 }}
  {{- end }}
  {{- with $v.extraContainers }}
  {{- tpl (toYaml .) $root | nindent 2 }}
  {{- end }}
volumes:
  {{- include "airflow-azblob.airflowVolumes" $ctx | nindent 2 }}
  {{- with $v.extraVolumes }}
  {{- tpl (toYaml .) $root | nindent 2 }}
  {{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- tpl (toYaml .) $root | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy ($v.affinity | default dict) }}
{{- if and .spread (not $affinity.podAntiAffinity) }}
{{- /* Several replicas: prefer a node each (soft, so a one-node cluster still schedules them all). */}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "airflow-azblob.selectorLabels" $ctx | fromYaml)) }}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
