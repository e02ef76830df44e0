{{/* The operator's objects: "<release>-operator", or fullnameOverride. */}}
{{- define "promdemo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if hasSuffix "-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* app.kubernetes.io/name, as in manifests/base. */}}
{{- define "promdemo.name" -}}
{{- default "promdemo-operator" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "promdemo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "promdemo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What selects the operator's pods: its name and the release (two releases may share a namespace). */}}
{{- define "promdemo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "promdemo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Helm's own labels (tests/unit/project/test_helm_chart.py leaves them out of its comparison). */}}
{{- define "promdemo.helmLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Every object's labels: manifests/base's (name, part-of) and Helm's own. */}}
{{- define "promdemo.labels" -}}
{{ include "promdemo.selectorLabels" . }}
app.kubernetes.io/part-of: promdemo
{{ include "promdemo.helmLabels" . }}
{{- end -}}

{{- define "promdemo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* `promdemo operator`'s arguments: the namespaces served, leader election, the extras. */}}
{{- define "promdemo.operatorArgs" -}}
{{- $args := list "operator" -}}
{{- if .Values.watchNamespaces -}}
{{- range .Values.watchNamespaces -}}
{{- $args = append $args "--namespace" -}}
{{- $args = append $args . -}}
{{- end -}}
{{- else -}}
{{- $args = append $args "--all-namespaces" -}}
{{- end -}}
{{- if .Values.leaderElection.enabled -}}
{{- $args = append $args "--leader-elect" -}}
{{- /* The Lease is named after the operator's objects; promdemo-operator is the flag's default. */ -}}
{{- if ne (include "promdemo.fullname" .) "promdemo-operator" -}}
{{- $args = concat $args (list "--leader-elect-lease-name" (include "promdemo.fullname" .)) -}}
{{- end -}}
{{- end -}}
{{- $args = concat $args .Values.extraArgs -}}
{{- toJson $args -}}
{{- end -}}

{{- define "promdemo.sampleNamespace" -}}
{{- default .Release.Namespace .Values.sample.namespace -}}
{{- end -}}
