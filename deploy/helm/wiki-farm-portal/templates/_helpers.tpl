{{/* Names and labels. */}}
{{- define "portal.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portal.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portal.labels" -}}
{{ include "portal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "portal.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "portal.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "portal.fullname" .)) -}}
{{- end -}}

{{/* The ConfigMap's data: the values' config plus what the chart decides itself. */}}
{{- define "portal.configData" -}}
FARM_DATA_DIR: /data
{{- if .Values.metrics.workerPort }}
FARM_WORKER_METRICS_PORT: {{ .Values.metrics.workerPort | quote }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The Secret's data: only the keys that have a value; the required ones checked. */}}
{{- define "portal.secretData" -}}
{{- $values := .Values.secret.values -}}
{{- $_ := required "secret.values.DJANGO_SECRET_KEY is required (or secret.existingSecret)" $values.DJANGO_SECRET_KEY -}}
{{- $_ := required "secret.values.DATABASE_URL is required (or secret.existingSecret)" $values.DATABASE_URL -}}
{{- $_ := required "secret.values.CELERY_BROKER_URL is required (or secret.existingSecret)" $values.CELERY_BROKER_URL -}}
{{- if .Values.serviceMonitor.enabled -}}
{{- $_ := required "secret.values.FARM_METRICS_TOKEN is required with serviceMonitor.enabled" $values.FARM_METRICS_TOKEN -}}
{{- end -}}
{{- range $key, $value := $values }}
{{- if $value }}
{{ $key }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Annotations that roll the pods when the configuration changes. */}}
{{- define "portal.configChecksums" -}}
checksum/config: {{ include "portal.configData" . | sha256sum }}
{{- if not .Values.secret.existingSecret }}
checksum/secret: {{ include "portal.secretData" . | sha256sum }}
{{- end }}
{{- end -}}

{{/* The environment of every portal container. */}}
{{- define "portal.envFrom" -}}
- configMapRef:
    name: {{ include "portal.fullname" . }}-env
- secretRef:
    name: {{ include "portal.secretName" . }}
{{- end -}}

{{/* Pod-level settings shared by every portal pod. */}}
{{- define "portal.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
Volumes: /data is the pod's own (FARM_DATA_DIR: static files, beat's schedule), /tmp for
gunicorn and prometheus_client, and the shared exports under /data/exports.
*/}}
{{- define "portal.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: exports
  persistentVolumeClaim:
    claimName: {{ .Values.exports.existingClaim | default (printf "%s-exports" (include "portal.fullname" .)) }}
{{- end -}}

{{- define "portal.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
- name: exports
  mountPath: /data/exports
{{- end -}}

{{/*
Hosts: the values' hosts, and the pod's IP for the probes and Prometheus, which address the
pod directly (Kubernetes expands $(POD_IP) from the variable defined before it).
*/}}
{{- define "portal.hostEnv" -}}
- name: POD_IP
  valueFrom:
    fieldRef: {fieldPath: status.podIP}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ printf "%s,$(POD_IP)" (join "," .Values.hosts) | quote }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ include "portal.origins" . | quote }}
{{- end -}}

{{- define "portal.origins" -}}
{{- $origins := list -}}
{{- range .Values.hosts -}}
{{- $origins = append $origins (printf "https://%s" .) -}}
{{- end -}}
{{- join "," $origins -}}
{{- end -}}
