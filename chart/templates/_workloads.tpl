{{/*
Whole manifests that several templates share: a component's Deployment, a per-revision Job, a helm test Pod,
an ingress NetworkPolicy and a Role bound to a ServiceAccount.
*/}}

{{/*
Deployment of a long-running Airflow component (api-server, scheduler, dag-processor, triggerer).
Call with (dict "root" $ "component" <name> "args" <list>) and either "jobType" <airflow job type> (liveness:
`airflow jobs check`) or "probes" <YAML of the container's probes>. Optional: "ports" <list of container ports>
(instead of the log server port the component runs, if any: give it too when passing ports to a component that runs
one), "initContainers" <YAML list> (run after the wait for migrations) and "env" <list of extra variables>.
*/}}
{{- define "airflow-azblob.componentDeployment" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $v := include "airflow-azblob.componentValues" $ctx | fromYaml -}}
{{- $probes := .probes -}}
{{- if not $probes -}}
{{- $probes = include "airflow-azblob.jobsCheckProbe" (required "componentDeployment needs jobType or probes" .jobType) -}}
{{- end -}}
{{- $container := dict "name" .component "args" .args "ports" .ports "probes" $probes "env" .env -}}
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
The head of a NetworkPolicy for one component's pods, up to `policyTypes`: the caller writes `ingress:` (and with
"egress" true, `egress:`) after it. Only the task pods' egress is restricted (airflow-azblob.taskPodEgress); the
long-running components keep theirs open. Call with (dict "root" $ "component" <name>) and optionally "egress" true.
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
  policyTypes: [{{ if .egress }}Ingress, Egress{{ else }}Ingress{{ end }}]
{{- end -}}

{{/*
A `from` peer: the release's pods of the given components. Call with (dict "root" $ "components" <list of names>).
*/}}
{{- define "airflow-azblob.fromComponents" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .root.Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: [{{ .components | sortAlpha | join ", " }}]
{{- end -}}

{{/* A `from` peer: the release's Airflow pods (every component of the table), nothing else. */}}
{{- define "airflow-azblob.fromAirflowPods" -}}
{{- include "airflow-azblob.fromComponents" (dict "root" . "components" (keys (include "airflow-azblob.components" . | fromYaml))) -}}
{{- end -}}

{{/* A `from` peer: the components that hold the metadata DB URL (the table's "db"), nothing else. */}}
{{- define "airflow-azblob.fromDbComponents" -}}
{{- $users := list -}}
{{- range $name, $c := include "airflow-azblob.components" . | fromYaml }}{{ if $c.db }}{{ $users = append $users $name }}{{ end }}{{ end -}}
{{- include "airflow-azblob.fromComponents" (dict "root" . "components" $users) -}}
{{- end -}}

{{/*
The Git host's port of the repository task pods clone (dags.gitSync.repo, or dags.gitBundle.repoUrl: GitDagBundle
clones in the task pod too): the URL's own, else its scheme's (git 9418, http 80, https 443, ssh and scp-like
user@host:path 22).
*/}}
{{- define "airflow-azblob.gitPort" -}}
{{- $repo := eq .Values.dags.mode "gitBundle" | ternary .Values.dags.gitBundle.repoUrl .Values.dags.gitSync.repo -}}
{{- if not (contains "://" $repo) -}}
22
{{- else -}}
{{- $url := urlParse $repo -}}
{{- $hostPort := splitList ":" (last (splitList "@" $url.host)) -}}
{{- if gt (len $hostPort) 1 -}}
{{ last $hostPort }}
{{- else -}}
{{ get (dict "git" "9418" "http" "80" "https" "443" "ssh" "22") $url.scheme | default "443" }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Kubernetes API as [{cidr, port}]: networkPolicies.workerEgress.kubernetesApi, else the addresses and port of the
kubernetes EndpointSlice (what the kubernetes Service forwards to, which is what a NetworkPolicy sees), looked up.
*/}}
{{- define "airflow-azblob.kubernetesApiEndpoints" -}}
{{- $given := .Values.networkPolicies.workerEgress.kubernetesApi -}}
{{- $found := list -}}
{{- if $given -}}
{{- $found = $given -}}
{{- else -}}
{{- $slice := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "kubernetes" -}}
{{- $port := (first ($slice.ports | default (list dict))).port -}}
{{- range (and $port $slice.endpoints | default list) }}{{ range .addresses }}
{{- $found = append $found (dict "cidr" (printf "%s/%s" . (ternary "128" "32" (contains ":" .))) "port" $port) -}}
{{- end }}{{ end -}}
{{- end -}}
{{- if not $found -}}
{{- fail "networkPolicies.enabled with workers.podOperator: task pods need the Kubernetes API, and its address could not be looked up (helm template, or no read access to the kubernetes EndpointSlice in namespace default). Set networkPolicies.workerEgress.kubernetesApi to the address and port the kubernetes Service forwards to (kubectl get endpointslice kubernetes -n default), e.g. [{cidr: 10.1.0.4/32, port: 443}]." -}}
{{- end -}}
{{- toYaml $found -}}
{{- end -}}

{{/*
The egress rules of the KubernetesExecutor's task pods: DNS, the api-server's Execution API, Blob storage (Azurite's
pods, or networkPolicies.workerEgress.storage on 443), the Git host in dags.mode gitSync (the init container clones),
the Kubernetes API with workers.podOperator, and workerEgress.extra. Nothing else: not the metadata DB, not the
Kubernetes API otherwise, not 169.254.169.254 (the defaults' ipBlocks leave it out).
*/}}
{{- define "airflow-azblob.taskPodEgress" -}}
{{- $np := .Values.networkPolicies.workerEgress -}}
- {{ with $np.dns }}to: {{- toYaml . | nindent 4 }}
  {{ end -}}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
- to:
    - podSelector:
        matchLabels:
          {{- include "airflow-azblob.selectorLabels" (dict "root" . "component" "api-server") | nindent 10 }}
  ports:
    - {port: 8080, protocol: TCP}
{{- if .Values.azurite.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "airflow-azblob.selectorLabels" (dict "root" . "component" "azurite") | nindent 10 }}
  ports:
    - {port: 10000, protocol: TCP}
{{- else }}
- to: {{- toYaml $np.storage | nindent 4 }}
  ports:
    - {port: 443, protocol: TCP}
{{- end }}
{{- if .Values.metrics.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "airflow-azblob.selectorLabels" (dict "root" . "component" "statsd-exporter") | nindent 10 }}
  ports:
    - {port: {{ include "airflow-azblob.statsdPort" . }}, protocol: UDP}
{{- end }}
{{- if has .Values.dags.mode (list "gitSync" "gitBundle") }}
- to: {{- toYaml $np.git | nindent 4 }}
  ports:
    - {port: {{ include "airflow-azblob.gitPort" . }}, protocol: TCP}
{{- end }}
{{- if .Values.workers.podOperator.enabled }}
{{- range include "airflow-azblob.kubernetesApiEndpoints" . | fromYamlArray }}
- to:
    - ipBlock: {cidr: {{ .cidr | quote }}}
  ports:
    - {port: {{ .port }}, protocol: TCP}
{{- end }}
{{- end }}
{{- with $np.extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A Role and the RoleBinding that gives it to the ServiceAccounts of some components of the release.
Call with (dict "root" $ "component" <name of both> "rules" <YAML list>) and optionally "subjects" (the list of
components whose ServiceAccounts get it; default: the component's own) and "namespace" (default: the release's).
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
  {{- $accounts := list }}
  {{- range .subjects | default (list .component) }}
  {{- $accounts = append $accounts (include "airflow-azblob.serviceAccountName" (dict "root" $.root "component" .)) }}
  {{- end }}
  {{- range uniq $accounts }}
  - kind: ServiceAccount
    name: {{ . }}
    namespace: {{ $.root.Release.Namespace }}
  {{- end }}
{{- end -}}
