{{/* Helpers are used with `template` (not `include`) and emit one-line YAML flow values, so the
     chart also renders with a plain Go text/template + sprig engine (tests/backends/kubernetes). */}}
{{- define "pai-hub.fullname" -}}{{ .Release.Name }}-pai-hub{{- end -}}
{{- define "pai-hub.labels" -}}{app.kubernetes.io/name: pai-hub, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}, helm.sh/chart: pai-hub-{{ .Chart.Version }}}{{- end -}}
{{- define "pai-hub.hubSelector" -}}{app.kubernetes.io/name: pai-hub, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: hub}{{- end -}}
{{- define "pai-hub.pgSelector" -}}{app.kubernetes.io/name: pai-hub, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: postgresql}{{- end -}}
