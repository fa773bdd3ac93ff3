{{/*
Names and labels of the chart's objects, and the images.
The chart's helpers are split by concern (see docs/architecture.md): _names, _components (what each kind of
Airflow pod is and gets, and its ServiceAccount), _locations (paths inside the image and
endpoints), _connections, _secrets, _config (airflow.cfg), _validation, _pods (pod building blocks) and _workloads
(the Deployment, Job, test Pod, NetworkPolicy and Role macros). One helper per fact that several templates need:
never spell one of these facts twice.
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

{{/* An images.* entry as a reference: repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "airflow-azblob.image" -}}
{{- printf "%s:%s" .repository (include "airflow-azblob.imageTag" .) -}}
{{- end -}}

{{/* The part after "repository:" (what [kubernetes_executor] worker_container_tag takes: Airflow joins the two). */}}
{{- define "airflow-azblob.imageTag" -}}
{{- toString .tag }}{{ with .digest }}@{{ . }}{{ end -}}
{{- end -}}

{{- define "airflow-azblob.airflowImage" -}}
{{- include "airflow-azblob.image" .Values.images.airflow -}}
{{- end -}}
