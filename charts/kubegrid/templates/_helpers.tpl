{{/*
Chart name, overridable with nameOverride; 63 characters at most (a DNS label).
*/}}
{{- define "kubegrid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full object name: fullnameOverride, else the release name when it already contains the chart
name, else "<release>-<chart>".
*/}}
{{- define "kubegrid.fullname" -}}
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
"name-version" for the helm.sh/chart label.
*/}}
{{- define "kubegrid.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "kubegrid.labels" -}}
helm.sh/chart: {{ include "kubegrid.chart" . }}
{{ include "kubegrid.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: kubegrid
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels the Deployment, Service and ServiceMonitor select on; never change them on upgrade
(a Deployment's selector is immutable).
*/}}
{{- define "kubegrid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubegrid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator image: [registry/]repository, then @digest when one is set (a digest pins the
exact image `kubegrid image build` made), else :tag (the chart's appVersion by default).
*/}}
{{- define "kubegrid.image" -}}
{{- $name := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $name = printf "%s/%s" . $name }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $name .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $name (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "kubegrid.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubegrid.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when the journal is Postgres (a URL or an existing Secret), "" for SQLite.
*/}}
{{- define "kubegrid.usesDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/*
The Secret and key holding the Postgres URL.
*/}}
{{- define "kubegrid.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "kubegrid.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kubegrid.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- required "database.existingSecretKey must name the key of database.existingSecret that holds the Postgres URL" .Values.database.existingSecretKey }}
{{- else -}}
url
{{- end }}
{{- end }}

{{/*
The journal PVC's name: the existing claim, or the one the chart creates.
*/}}
{{- define "kubegrid.journalClaimName" -}}
{{- if .Values.persistence.existingClaim }}
{{- .Values.persistence.existingClaim }}
{{- else }}
{{- printf "%s-journal" (include "kubegrid.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Refuses value combinations that would install a broken operator. Included by the Deployment,
so `helm install`, `helm template` and `helm lint` all stop with the message.
*/}}
{{- define "kubegrid.validateValues" -}}
{{- $db := include "kubegrid.usesDatabase" . }}
{{- if and (gt (int .Values.replicas) 1) (not $db) }}
{{- fail (printf "replicas is %d but the journal is SQLite on a ReadWriteOnce volume, which only one pod can mount and SQLite cannot share between writers. Set database.url or database.existingSecret (Postgres) to run more than one replica, or set replicas to 1." (int .Values.replicas)) }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "database.url and database.existingSecret are both set: set one (existingSecret keeps the password out of values)." }}
{{- end }}
{{- if and .Values.bundles.existingClaim .Values.bundles.hostPath }}
{{- fail "bundles.existingClaim and bundles.hostPath are both set: the bundle volume comes from one of them." }}
{{- end }}
{{- if and $db .Values.persistence.existingClaim }}
{{- fail "persistence.existingClaim is set but the journal is Postgres (database.*), so no journal volume is mounted: unset one of them." }}
{{- end }}
{{- $first := first (splitList "/" .Values.image.repository) }}
{{- if and .Values.image.registry (contains "/" .Values.image.repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- fail (printf "image.repository %q starts with a registry host (%s) and image.registry is %q too, so the image would be %s/%s: set image.registry to %q and image.repository to the rest, or set image.registry to \"\"." .Values.image.repository $first .Values.image.registry .Values.image.registry .Values.image.repository $first) }}
{{- end }}
{{- if not (and (dig "limits" "cpu" "" .Values.resources) (dig "limits" "memory" "" .Values.resources)) }}
{{- fail "resources.limits.cpu and resources.limits.memory must both be set: the operator container always runs with limits." }}
{{- end }}
{{- end }}
