{{/* The chart's name, overridable with nameOverride. */}}
{{- define "roiergasias-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart name. */}}
{{- define "roiergasias-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Cluster-scoped objects carry the release namespace in their name, so the chart
can be installed in several namespaces of one cluster.
*/}}
{{- define "roiergasias-operator.clusterName" -}}
{{- printf "%s-%s" (include "roiergasias-operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roiergasias-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roiergasias-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roiergasias-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roiergasias-operator.labels" -}}
helm.sh/chart: {{ include "roiergasias-operator.chart" . }}
{{ include "roiergasias-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "roiergasias-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roiergasias-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roiergasias-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "roiergasias-operator.runnerImage" -}}
{{- printf "%s:%s" .Values.runnerImage.repository (default .Chart.AppVersion .Values.runnerImage.tag) }}
{{- end }}

{{/*
The permissions the controller uses, exactly (see controller/src): it watches
Workflows and writes only their status (a merge patch); it creates ConfigMaps
(reading one back when its name is taken) and Jobs, watches its Jobs, and never
deletes either: they carry an ownerReference to their Workflow, and the garbage
collector deletes them with it; it watches its Jobs' pods (by label) for their
termination messages; it records events.k8s.io Events (create, then patch for
a repeated one). Nothing on secrets; no pods made.
*/}}
{{- define "roiergasias-operator.workflowRules" -}}
- apiGroups: ["batch.ankursoni.github.io"]
  resources: ["workflows"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch.ankursoni.github.io"]
  resources: ["workflows/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
