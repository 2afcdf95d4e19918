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

{{- /*
API versions by what the cluster serves (helm install asks it; helm template assumes a current one),
so the chart installs on Kubernetes 1.20 (autoscaling/v2beta2, policy/v1beta1) and on current ones.
*/}}
{{- define "threadline.hpaApiVersion" -}}
{{ if .Capabilities.APIVersions.Has "autoscaling/v2" }}autoscaling/v2{{ else }}autoscaling/v2beta2{{ end }}
{{- end }}
{{- define "threadline.pdbApiVersion" -}}
{{ if .Capabilities.APIVersions.Has "policy/v1" }}policy/v1{{ else }}policy/v1beta1{{ end }}
{{- end }}

{{- /* gRPC probes came in Kubernetes 1.24; before, a TCP check of the port. */}}
{{- define "threadline.grpcProbe" -}}
{{- if semverCompare ">=1.24-0" .root.Capabilities.KubeVersion.Version -}}
{{ dict "grpc" (dict "port" (int .port)) | toYaml }}
{{- else -}}
{{ dict "tcpSocket" (dict "port" (int .port)) | toYaml }}
{{- end }}
{{- end }}
