{{/* Chart name, overridable. */}}
{{- define "taskgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Object names are derived from it, so two releases in
different namespaces need different release names (webhook configurations and
cluster RBAC are cluster-scoped). Kept short enough for the "-webhook-cert"
style suffixes to stay within 63 characters.
*/}}
{{- define "taskgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "taskgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskgate.labels" -}}
helm.sh/chart: {{ include "taskgate.chart" . }}
{{ include "taskgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: taskgate
{{- end }}

{{- define "taskgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "taskgate.webhookServiceName" -}}{{ include "taskgate.fullname" . }}-webhook{{- end }}
{{- define "taskgate.metricsServiceName" -}}{{ include "taskgate.fullname" . }}-metrics{{- end }}
{{- define "taskgate.certSecretName" -}}{{ include "taskgate.fullname" . }}-webhook-cert{{- end }}
{{- define "taskgate.certificateName" -}}{{ include "taskgate.fullname" . }}-webhook-cert{{- end }}
{{- define "taskgate.mutatingName" -}}{{ include "taskgate.fullname" . }}-mutating{{- end }}
{{- define "taskgate.validatingName" -}}{{ include "taskgate.fullname" . }}-validating{{- end }}
{{- define "taskgate.syncSchemasName" -}}{{ include "taskgate.fullname" . }}-sync-schemas{{- end }}

{{/*
Namespace of every namespaced object: namespaceOverride, else the release's
(for umbrella charts that install taskgate beside others).
*/}}
{{- define "taskgate.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The manager image. global.imageRegistry (a mirror) replaces the registry host
of image.repository, or is put in front of a repository that names none;
image.digest pins the image (repository:tag@digest: the runtime pulls by
digest, the tag stays readable).
*/}}
{{- define "taskgate.image" -}}
{{- $repo := .Values.image.repository }}
{{- $registry := (.Values.global | default dict).imageRegistry | default "" }}
{{- if $registry }}
{{- $parts := splitList "/" $repo }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repo = join "/" (rest $parts) }}
{{- end }}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}
{{- end }}
{{- $ref := printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- with .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref . }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
"true" when the chart should render the Task CRD: crds.enabled, unless a
live cluster (helm install/upgrade) already has one that another release
installed; that release keeps managing it, as with a second taskgate release.
*/}}
{{- define "taskgate.installTaskCRD" -}}
{{- include "taskgate.installCRD" (dict "ctx" . "name" "tasks.automation.astronetes.io") }}
{{- end }}
{{- define "taskgate.installTaskRunCRD" -}}
{{- include "taskgate.installCRD" (dict "ctx" . "name" "taskruns.automation.astronetes.io") }}
{{- end }}

{{/* "true" when this release installs the CRD named .name: crds.enabled, and
the CRD is absent or already this release's (one another release or a user
installed is left alone). */}}
{{- define "taskgate.installCRD" -}}
{{- $ := .ctx }}
{{- if $.Values.crds.enabled }}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name }}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" ($crd | default dict) }}
{{- $ownerNS := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" ($crd | default dict) }}
{{- if or (not $owner) (and (eq $owner $.Release.Name) (eq $ownerNS $.Release.Namespace)) }}true{{ end }}
{{- end }}
{{- end }}

{{/* Where the kubelet mounts the serving certificate Secret (rotator or cert-manager). */}}
{{- define "taskgate.certDir" -}}/tmp/k8s-webhook-server/serving-certs{{- end }}
{{- define "taskgate.syncSchemaDir" -}}/etc/taskgate/sync-schemas{{- end }}

{{/* "true" when the built-in rotator manages the serving certificate. */}}
{{- define "taskgate.certRotation" -}}
{{- if and .Values.enableWebhooks (eq .Values.certs.mode "self-signed") }}true{{ end }}
{{- end }}

{{/* Fails rendering on values that cannot work, before anything reaches the cluster. */}}
{{- define "taskgate.validateValues" -}}
{{- if not (has .Values.certs.mode (list "self-signed" "cert-manager")) }}
{{- fail (printf "certs.mode must be self-signed or cert-manager, not %q" .Values.certs.mode) }}
{{- end }}
{{- if not (or .Values.enableWebhooks .Values.enableController) }}
{{- fail "enableWebhooks and enableController are both false: nothing would run" }}
{{- end }}
{{- if not (has (toString .Values.synchronizationCRD.install) (list "auto" "true" "false")) }}
{{- fail (printf "synchronizationCRD.install must be auto, true or false, not %q" (toString .Values.synchronizationCRD.install)) }}
{{- end }}
{{- if not (has .Values.logFormat (list "json" "console")) }}
{{- fail (printf "logFormat must be json or console, not %q" .Values.logFormat) }}
{{- end }}
{{- if not (has .Values.logLevel (list "info" "debug")) }}
{{- fail (printf "logLevel must be info or debug, not %q" .Values.logLevel) }}
{{- end }}
{{- if not (has .Values.actAs (list "requester" "controller")) }}
{{- fail (printf "actAs must be requester or controller, not %q" (toString .Values.actAs)) }}
{{- end }}
{{- if not (kindIs "bool" .Values.webhook.preflight) }}
{{- fail (printf "webhook.preflight must be true or false, not %q" (toString .Values.webhook.preflight)) }}
{{- end }}
{{- if lt (int .Values.controller.maxTransformationObjects) 0 }}
{{- fail "controller.maxTransformationObjects must be 0 (the manager's default) or a positive number" }}
{{- end }}
{{- $t := int .Values.webhook.timeoutSeconds }}
{{- if or (lt $t 1) (gt $t 30) }}
{{- fail "webhook.timeoutSeconds must be between 1 and 30 (the API server's limit)" }}
{{- end }}
{{- if not (kindIs "bool" .Values.webhook.singleCall) }}
{{- fail (printf "webhook.singleCall must be true or false, not %q" (toString .Values.webhook.singleCall)) }}
{{- end }}
{{- /* A Task the webhooks skip is stored as written: only actAs=requester with the requester policy keeps it to its creator's own rights. */}}
{{- if and (or .Values.webhook.namespaceSelector .Values.webhook.objectSelector) (or (eq .Values.actAs "controller") (not .Values.requesterPolicy.enabled)) }}
{{- fail "webhook.namespaceSelector/objectSelector need actAs=requester and requesterPolicy.enabled: a Task the webhooks skip would otherwise run unchecked with rights that are not its creator's" }}
{{- end }}
{{- if not (regexMatch "^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$" (toString .Values.controller.finishedTaskTTL)) }}
{{- fail (printf "controller.finishedTaskTTL must be a duration such as 24h, 30m or 0 (keep finished Tasks), not %q" (toString .Values.controller.finishedTaskTTL)) }}
{{- end }}
{{- /* A Go duration as --access-review-cache-ttl parses it: "0", or units such as 10s, 1m30s. */}}
{{- if not (regexMatch "^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$" (toString .Values.webhook.accessReviewCacheTTL)) }}
{{- fail (printf "webhook.accessReviewCacheTTL must be a duration such as 10s, 1m or 0 (off), not %q" (toString .Values.webhook.accessReviewCacheTTL)) }}
{{- end }}
{{- end }}

{{/*
"true" when the chart should install the minimal Synchronization CRD.
auto: only when rendering against a live cluster (lookup of kube-system
succeeds) that has no synchronizations CRD yet, or whose CRD this release
installed earlier (so upgrades keep it). Offline rendering (helm template,
GitOps tools) never installs it in auto mode: it cannot tell whether the
Astronetes CRD exists, and overwriting that CRD would be far worse than a
missing one, which run-synchronization Tasks report clearly.
*/}}
{{- define "taskgate.installSyncCRD" -}}
{{- $mode := toString .Values.synchronizationCRD.install }}
{{- if eq $mode "true" }}true
{{- else if eq $mode "auto" }}
{{- if lookup "v1" "Namespace" "" "kube-system" }}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "synchronizations.automation.astronetes.io" }}
{{- if not $crd }}true
{{- else if and (eq (dig "metadata" "annotations" "meta.helm.sh/release-name" "" $crd) .Release.Name) (eq (dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" $crd) .Release.Namespace) }}true
{{- end }}
{{- end }}
{{- end }}
{{- end }}
