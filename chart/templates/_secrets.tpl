{{/*
The Secrets Airflow reads: their names (generated or existing), how a generated value survives upgrades, and
what decides their content (for the checksum annotations).
*/}}

{{- define "airflow-azblob.metadataSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "airflow-azblob.componentName" (dict "root" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.metadataSecretKey" -}}
{{- if .Values.postgresql.enabled -}}connection{{- else -}}{{ .Values.database.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* Name of a generated secret unless an existing one is configured. Call with (dict "root" $ "value" <block> "suffix" "fernet-key"). */}}
{{- define "airflow-azblob.secretName" -}}
{{- .value.existingSecret | default (include "airflow-azblob.componentName" (dict "root" .root "component" .suffix)) -}}
{{- end -}}

{{- define "airflow-azblob.fernetSecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.fernetKey "suffix" "fernet-key") -}}
{{- end -}}

{{- define "airflow-azblob.apiSecretKeySecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.apiSecretKey "suffix" "api-secret-key") -}}
{{- end -}}

{{- define "airflow-azblob.jwtSecretName" -}}
{{- include "airflow-azblob.secretName" (dict "root" . "value" .Values.secrets.jwtSecret "suffix" "jwt-secret") -}}
{{- end -}}

{{/* The OIDC client secret as [oidc] client_secret, a list of env entries (empty without auth.oidc). */}}
{{- define "airflow-azblob.oidcSecretEnv" -}}
{{- $o := .Values.auth.oidc -}}
{{- if and (eq .Values.auth.manager "fab") $o.enabled -}}
- name: AIRFLOW__OIDC__CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $o.clientSecret.existingSecret }}
      key: {{ $o.clientSecret.key }}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{- define "airflow-azblob.authSecretName" -}}
{{- .Values.auth.existingSecret | default (include "airflow-azblob.componentName" (dict "root" . "component" "auth")) -}}
{{- end -}}

{{/*
A value generated once: the existing Secret's value when the release already has it (lookup), a new random
one otherwise. Call with (dict "root" $ "name" <secret name> "key" <data key> "value" <new value>).
*/}}
{{- define "airflow-azblob.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- .value | b64enc -}}
{{- end -}}
{{- end -}}

{{/* -------------------------------------------------------------------------------- checksum input */}}

{{/*
What decides the content of the Secrets the chart generates (which Secret, which key, which users, which DB URL),
never the content itself: a generated value is random in every render until lookup finds the kept one, so hashing
it would roll every pod on the first upgrade after an install (and on every `helm template`).
*/}}
{{- define "airflow-azblob.secretInputs" -}}
{{- $v := .Values -}}
{{- dict "secrets" $v.secrets "auth" $v.auth "database" $v.database "postgresql" (pick $v.postgresql "enabled" "username" "database") | toJson -}}
{{- end -}}
