{{/*
Whole manifests that several templates share: a component's Deployment, a per-revision Job, a helm test Pod,
an ingress NetworkPolicy and a Role bound to a ServiceAccount.
*/}}

{{/*
Deployment of a long-running Airflow component (api-server, scheduler, dag-processor, triggerer).
Call with (dict "root" $ "component" <name> "values" <component values> "args" <list>) and either "jobType" <airflow
job type> (liveness: `airflow jobs check`) or "probes" <YAML of the container's probes>. Optional: "ports" <list of
container ports> (instead of the log server port the component runs, if any: give it too when passing ports to a
component that runs one) and "initContainers" <YAML list> (run after the wait for migrations).
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
        {{- with .initContainers }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- if and (eq $root.Values.dags.mode "gitSync") (include "airflow-azblob.needsDags" $ctx) }}
        {{- /* The first sync completes before Airflow starts: a first scan of an empty folder would deactivate every DAG. */}}
        {{- include "airflow-azblob.gitSyncContainer" (dict "root" $root "oneShot" true) | nindent 8 }}
        {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "airflow-azblob.airflowImage" $root }}
          imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
          args: {{ toJson .args }}
          {{- $ports := .ports }}
          {{- with include "airflow-azblob.logServer" $ctx | fromYaml }}
          {{- $ports = $ports | default (list (dict "name" "logs" "containerPort" .port)) }}
          {{- end }}
          {{- with $ports }}
          ports:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            {{- include "airflow-azblob.airflowEnv" $ctx | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .probes }}
          {{- .probes | nindent 10 }}
          {{- else }}
          livenessProbe:
            exec:
              command: ["airflow", "jobs", "check", "--job-type", {{ required "componentDeployment needs jobType or probes" .jobType | quote }}, "--local"]
            initialDelaySeconds: 60
            periodSeconds: 60
            timeoutSeconds: 45
            failureThreshold: 5
          {{- end }}
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
A Job that runs once per release revision (db-migrate, create-containers): named <fullname>-<component>-<revision>, so every
upgrade runs it with the new image and an old Job never blocks an upgrade with its immutable spec.
Call with (dict "root" $ "component" <name> "args" <list>) and optionally "env" <list of extra variables>.
*/}}
{{- define "airflow-azblob.revisionJob" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-%d" (include "airflow-azblob.componentName" $ctx) $root.Release.Revision }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
spec:
  backoffLimit: {{ $root.Values.jobs.backoffLimit }}
  {{- with $root.Values.jobs.ttlSecondsAfterFinished }}
  ttlSecondsAfterFinished: {{ . }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "airflow-azblob.podLabels" (merge (dict "airflow" true) $ctx) | nindent 8 }}
      annotations:
        {{- include "airflow-azblob.checksums" $ctx | nindent 8 }}
    spec:
      restartPolicy: OnFailure
      serviceAccountName: {{ include "airflow-azblob.serviceAccountName" (dict "root" $root "component" "worker" "values" $root.Values.workers) }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "airflow-azblob.podSecurityContext" $root | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "airflow-azblob.airflowImage" $root }}
          imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
          args: {{ toJson .args }}
          env:
            {{- include "airflow-azblob.airflowEnv" $ctx | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          securityContext:
            {{- include "airflow-azblob.containerSecurityContext" $root | nindent 12 }}
          {{- with $root.Values.jobs.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- include "airflow-azblob.airflowVolumeMounts" $ctx | nindent 12 }}
      volumes:
        {{- include "airflow-azblob.airflowVolumes" $ctx | nindent 8 }}
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

{{/*
The head of an ingress NetworkPolicy for one component's pods, up to `policyTypes`: the caller writes `ingress:`
after it. The chart's policies restrict ingress only: egress stays open (DNS, the Kubernetes API, Git hosts and Azure
endpoints vary per cluster). Call with (dict "root" $ "component" <name>).
*/}}
{{- define "airflow-azblob.networkPolicy" -}}
{{- $ctx := dict "root" .root "component" .component -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "airflow-azblob.componentName" $ctx }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "airflow-azblob.selectorLabels" $ctx | nindent 6 }}
  policyTypes: [Ingress]
{{- end -}}

{{/* A `from` peer: the release's Airflow pods (components, workers, Jobs, helm tests), nothing else. */}}
{{- define "airflow-azblob.fromAirflowPods" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: [api-server, scheduler, dag-processor, triggerer, worker, db-migrate, db-cleanup, create-containers, test]
{{- end -}}

{{/*
A Role and the RoleBinding that gives it to one ServiceAccount of the release.
Call with (dict "root" $ "component" <name of both> "subject" <ServiceAccount name> "rules" <YAML list>) and
optionally "namespace" (default: the release's).
*/}}
{{- define "airflow-azblob.role" -}}
{{- $ctx := dict "root" .root "component" .component -}}
{{- $name := include "airflow-azblob.componentName" $ctx -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
rules:
  {{- .rules | trim | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ .subject }}
    namespace: {{ .root.Release.Namespace }}
{{- end -}}
