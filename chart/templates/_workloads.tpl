{{/*
Whole manifests that several templates share: a component's Deployment, a per-revision Job, a helm test Pod,
an ingress NetworkPolicy and a Role bound to a ServiceAccount.
*/}}

{{/*
Deployment of a long-running Airflow component (api-server, scheduler, dag-processor, triggerer).
Call with (dict "root" $ "component" <name> "args" <list>) and either "jobType" <airflow job type> (liveness:
`airflow jobs check`) or "probes" <YAML of the container's probes>. Optional: "ports" <list of container ports>
(instead of the log server port the component runs, if any: give it too when passing ports to a component that runs
one) and "initContainers" <YAML list> (run after the wait for migrations).
*/}}
{{- define "airflow-azblob.componentDeployment" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $v := include "airflow-azblob.componentValues" $ctx | fromYaml -}}
{{- $probes := .probes -}}
{{- if not $probes -}}
{{- $probes = include "airflow-azblob.jobsCheckProbe" (required "componentDeployment needs jobType or probes" .jobType) -}}
{{- end -}}
{{- $container := dict "name" .component "args" .args "ports" .ports "probes" $probes -}}
{{- $scaling := include "airflow-azblob.replicas" $ctx | fromYaml -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "airflow-azblob.componentName" $ctx }}
  labels:
    {{- include "airflow-azblob.labels" $ctx | nindent 4 }}
spec:
  {{- if not $scaling.autoscaled }}
  {{- /* With autoscaling the HorizontalPodAutoscaler owns the count: a replicas here would reset it on every upgrade. */}}
  replicas: {{ $v.replicas }}
  {{- end }}
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
      {{- $spec := dict "container" $container "waitForMigrations" true "initContainers" .initContainers "spread" $scaling.several }}
      {{- include "airflow-azblob.airflowPodSpec" (merge $spec $ctx) | nindent 6 }}
{{- end -}}

{{/*
How many pods a component's Deployment runs, as YAML: autoscaled (an HPA owns the count), min and max, and several
(more than one pod at some time: the soft anti-affinity and the PodDisruptionBudget apply). Call with
(dict "root" $ "component" <name>).
*/}}
{{- define "airflow-azblob.replicas" -}}
{{- $v := include "airflow-azblob.componentValues" . | fromYaml -}}
{{- $autoscaled := dig "autoscaling" "enabled" false $v -}}
{{- $min := ternary (dig "autoscaling" "minReplicas" 1 $v) ($v.replicas | default 0) $autoscaled | int -}}
{{- $max := ternary (dig "autoscaling" "maxReplicas" 1 $v) ($v.replicas | default 0) $autoscaled | int -}}
autoscaled: {{ $autoscaled }}
min: {{ $min }}
max: {{ $max }}
several: {{ gt $max 1 }}
{{- end -}}

{{/* Liveness of a component that heartbeats as an Airflow job: `airflow jobs check` of its own job. */}}
{{- define "airflow-azblob.jobsCheckProbe" -}}
livenessProbe:
  exec:
    command: ["airflow", "jobs", "check", "--job-type", {{ quote . }}, "--local"]
  initialDelaySeconds: 60
  periodSeconds: 60
  timeoutSeconds: 45
  failureThreshold: 5
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
      {{- $container := dict "name" .component "args" .args "env" .env }}
      {{- include "airflow-azblob.airflowPodSpec" (merge (dict "container" $container "restartPolicy" "OnFailure") $ctx) | nindent 6 }}
{{- end -}}

{{/*
A helm test Pod running a script of chart/files/scripts/ with the image's python.
Call with (dict "root" $ "name" <test name> "script" <file> "args" <list>).
*/}}
{{- define "airflow-azblob.testPod" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" "test" -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "airflow-azblob.componentName" (dict "root" $root "component" (printf "test-%s" .name)) }}
  labels:
    {{- include "airflow-azblob.podLabels" (merge (dict "airflow" true) $ctx) | nindent 4 }}
  annotations:
    helm.sh/hook: test
    {{- /* Not hook-succeeded: Helm < 3.20 deletes the pod before `helm test --logs` reads it. The pod stays until
    the next `helm test` (scripts/deploy deletes it after showing its log). */}}
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  {{- $args := concat (list "python" "-c" ($root.Files.Get (printf "files/scripts/%s" .script))) .args }}
  {{- include "airflow-azblob.airflowPodSpec" (merge (dict "container" (dict "name" "test" "args" $args) "restartPolicy" "Never") $ctx) | nindent 2 }}
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

{{/* A `from` peer: the release's Airflow pods (every component of the table), nothing else. */}}
{{- define "airflow-azblob.fromAirflowPods" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: [{{ keys (include "airflow-azblob.components" . | fromYaml) | sortAlpha | join ", " }}]
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
