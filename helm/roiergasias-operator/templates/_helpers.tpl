{{/* The chart's name, overridable with nameOverride. */}}
{{- define "roiergasias-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name alone when it already holds the chart name. A DNS label
(dots in a release name become '-', since Deployment names end up in pod hostnames), at most 63
characters. Longer names built on it that must be DNS labels (the metrics Service) use
"roiergasias-operator.serviceName", which makes them fit.
*/}}
{{- define "roiergasias-operator.fullname" -}}
{{- $full := "" }}
{{- if .Values.fullnameOverride }}
{{- $full = .Values.fullnameOverride }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- $full = .Release.Name }}
{{- else }}
{{- $full = printf "%s-%s" .Release.Name $name }}
{{- end }}
{{- end }}
{{- regexReplaceAll "-+$" ($full | replace "." "-" | trunc 63) "" }}
{{- end }}

{{/*
A Service name, `<fullname>-<suffix>` as a DNS-1035 label (what clusters before Kubernetes 1.34
require): a leading digit gets the prefix "r", and a name that would pass 63 characters is cut
and ends in a hash of the whole, so two long release names never share a Service. Call with
(list . "suffix").
*/}}
{{- define "roiergasias-operator.serviceName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "roiergasias-operator.fullname" $root }}
{{- if not (regexMatch "^[a-z]" $base) }}
{{- $base = printf "r%s" $base }}
{{- end }}
{{- $room := sub 62 (len $suffix) | int }}
{{- if gt (len $base) $room }}
{{- $base = printf "%s-%s" ($base | trunc (sub $room 9 | int) | trimSuffix "-") (sha256sum $base | trunc 8) }}
{{- end }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/*
Cluster-scoped objects carry the release namespace in their name, so the chart can be installed in
several namespaces of one cluster. RBAC names are not limited to 63 characters: nothing is cut, so
two namespaces never share one.
*/}}
{{- define "roiergasias-operator.clusterName" -}}
{{- printf "%s-%s" (include "roiergasias-operator.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "roiergasias-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every label value is quoted: a release called `true` or `123` must stay a string. */}}
{{- define "roiergasias-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roiergasias-operator.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "roiergasias-operator.labels" -}}
helm.sh/chart: {{ include "roiergasias-operator.chart" . | quote }}
{{ include "roiergasias-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
A map of strings (labels, annotations, a nodeSelector), each key and value quoted, so that
`--set podLabels.tier=1` gives the label "1" and never a number. Call with (dict "map" M "indent" N).
*/}}
{{- define "roiergasias-operator.stringMap" -}}
{{- range $key, $value := .map }}
{{ printf "%s: %s" ($key | quote) (toString $value | quote) | indent $.indent }}
{{- end }}
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
# delete: spec.ttlSecondsAfterFinished removes a finished Workflow.
- apiGroups: ["batch.ankursoni.github.io"]
  resources: ["workflows"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["batch.ankursoni.github.io"]
  resources: ["workflows/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create"]
# patch: past spec.activeDeadlineSeconds the running Job is suspended ({"spec":{"suspend":true}}).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The Job controller's FailedCreate Events (watched): a pod that admission refuses fails its
# Workflow.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch"]
{{- end }}
