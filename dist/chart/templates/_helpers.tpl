{{/* The chart name, "jeton" unless nameOverride. */}}
{{- define "jeton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name. Release "jeton" (or any name containing it) gives
"jeton", so the names match config/default's: jeton-controller-manager, jeton-metrics...
Kept at 40 characters so that "<fullname>-leader-election-rolebinding" fits in 63.
*/}}
{{- define "jeton.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "jeton.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "jeton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "jeton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
Labels selecting the manager's pods: config/default's, so that `helm install --take-ownership`
can adopt a Deployment installed from install.yaml or kustomize (a Deployment's selector is
immutable). One jeton per namespace: the replicas of two would compete for one Lease anyway.
*/}}
{{- define "jeton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jeton.name" . }}
control-plane: controller-manager
{{- end -}}

{{- define "jeton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-controller-manager" (include "jeton.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "jeton.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The gateway's name: <fullname>-gateway, jeton-gateway for release "jeton" (config/default's). */}}
{{- define "jeton.gateway.fullname" -}}
{{- printf "%s-gateway" (include "jeton.fullname" .) -}}
{{- end -}}

{{/*
Labels of the gateway's objects. Its own app.kubernetes.io/name (jeton-gateway), so that
nothing selecting the manager (its Service, PDB, ServiceMonitor, job="jeton") selects it.
*/}}
{{- define "jeton.gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "jeton.gateway.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "jeton.name" . }}
{{- end -}}

{{/* Selector of the gateway's pods: config/gateway's, so Helm can adopt a kustomize install. */}}
{{- define "jeton.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jeton.name" . }}-gateway
{{- end -}}

{{/* The gateway's API port: 8443 (HTTPS) with tls.secretName, 8080 (HTTP) without. */}}
{{- define "jeton.gateway.port" -}}
{{- if .Values.gateway.tls.secretName }}8443{{ else }}8080{{ end -}}
{{- end -}}

{{/* The BASE_URL the manager injects in gateway mode (--gateway-url). */}}
{{- define "jeton.gateway.url" -}}
{{- if .Values.gateway.url -}}
{{- .Values.gateway.url -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%s" (ternary "https" "http" (ne .Values.gateway.tls.secretName "")) (include "jeton.gateway.fullname" .) .Release.Namespace (include "jeton.gateway.port" .) -}}
{{- end -}}
{{- end -}}

{{/* The credentials namespaces: credentialsNamespaces, or the release namespace. */}}
{{- define "jeton.credentialsNamespaces" -}}
{{- default (list .Release.Namespace) .Values.credentialsNamespaces | toJson -}}
{{- end -}}
