{{/*
The Airflow connections the chart gives its pods: the Azure Blob connection (Azurite's or a storage account's)
and the kubernetes_default connection of workers.podOperator.
*/}}

{{/* ------------------------------------------------------------------------------ Azure connection */}}

{{- define "airflow-azblob.azureConnectionSecretName" -}}
{{- if and (not .Values.azurite.enabled) .Values.azure.connection.existingSecret -}}
{{- .Values.azure.connection.existingSecret -}}
{{- else -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "azure-connection") -}}
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.azureConnectionSecretKey" -}}
{{- if and (not .Values.azurite.enabled) .Values.azure.connection.existingSecret -}}
{{- .Values.azure.connection.existingSecretKey -}}
{{- else -}}connection{{- end -}}
{{- end -}}

{{/* Does the chart create the connection Secret (Azurite or account URL)? */}}
{{- define "airflow-azblob.azureConnectionCreated" -}}
{{- if or .Values.azurite.enabled (not .Values.azure.connection.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The AIRFLOW_CONN_* value the chart creates: JSON, as Airflow reads it from the environment. The extra carries
azure.connection.clientOptions, which WasbHook and the XCom backend hand to the SDK's client. */}}
{{- define "airflow-azblob.azureConnectionValue" -}}
{{- $options := .Values.azure.connection.clientOptions | default dict -}}
{{- if .Values.azurite.enabled -}}
{{- $cs := printf "DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;" (include "airflow-azblob.azuriteAccount" .) (include "airflow-azblob.azuriteKey" .) (include "airflow-azblob.azuriteBlobEndpoint" .) -}}
{{- dict "conn_type" "wasb" "extra" (merge (dict "connection_string" $cs) $options) | toJson -}}
{{- else if $options -}}
{{- dict "conn_type" "wasb" "host" .Values.azure.connection.accountUrl "extra" $options | toJson -}}
{{- else -}}
{{- dict "conn_type" "wasb" "host" .Values.azure.connection.accountUrl | toJson -}}
{{- end -}}
{{- end -}}

{{/* Environment variable name of a connection id: AIRFLOW_CONN_<ID upper-cased>. */}}
{{- define "airflow-azblob.connEnvName" -}}
{{- printf "AIRFLOW_CONN_%s" (upper .) -}}
{{- end -}}

{{- define "airflow-azblob.logsConnectionId" -}}
{{- .Values.logs.remote.connectionId | default .Values.azure.connection.id -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------- pod operator */}}

{{/* The namespace workers.podOperator's step pods run in (and its Role is made in). */}}
{{- define "airflow-azblob.podOperatorNamespace" -}}
{{- .Values.workers.podOperator.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The kubernetes_default connection of workers.podOperator: in-cluster, the step pods' namespace, and the XCom
sidecar's image and security context (the chart's own restricted one). */}}
{{- define "airflow-azblob.podOperatorConnection" -}}
{{- $p := .Values.workers.podOperator -}}
{{- $extra := dict
  "in_cluster" true
  "namespace" (include "airflow-azblob.podOperatorNamespace" .)
  "xcom_sidecar_container_image" ($p.xcomSidecarImage | default (include "airflow-azblob.airflowImage" .))
  "xcom_sidecar_container_security_context" (include "airflow-azblob.containerSecurityContext" . | fromYaml | toJson)
-}}
{{- dict "conn_type" "kubernetes" "extra" $extra | toJson -}}
{{- end -}}
