{{- define "threadline.labels" -}}
app.kubernetes.io/part-of: threadline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "threadline.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- with .pool }}
threadline.dev/agent-pool: {{ . }}
{{- end }}
{{- end }}

{{- define "threadline.image" -}}
{{ .root.Values.image.registry }}/{{ .name }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{- define "threadline.serviceAccount" -}}
{{ .Values.serviceAccount.name | default .Release.Name }}
{{- end }}

{{- /* Where the release's NATS and Redis are: bundled ones when enabled, else the configured endpoints. */}}
{{- define "threadline.natsUrl" -}}
{{ if .Values.bundled.enabled }}nats://{{ .Release.Name }}-nats:4222{{ else }}{{ .Values.nats.url }}{{ end }}
{{- end }}
{{- define "threadline.redisUrl" -}}
{{ if .Values.bundled.enabled }}redis://{{ .Release.Name }}-redis:6379/0{{ else }}{{ .Values.redis.url }}{{ end }}
{{- end }}

{{- define "threadline.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "threadline.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
{{- end }}
