{{/* Chart name. */}}
{{- define "beat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; replica objects append "-<i>", so keep room for it. */}}
{{- define "beat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "beat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "beat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "beat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "beat.labels" -}}
helm.sh/chart: {{ include "beat.chart" . }}
{{ include "beat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: beat
beat.io/variant: {{ .Values.variant }}
{{- end -}}

{{/* f = floor((n-1)/3), the number of Byzantine replicas tolerated. */}}
{{- define "beat.faults" -}}
{{- div (sub (int .Values.replicas) 1) 3 -}}
{{- end -}}

{{/* The image of replica i: (list $ctx $i). */}}
{{- define "beat.image" -}}
{{- $ctx := index . 0 -}}{{- $i := index . 1 -}}
{{- $tag := default $ctx.Chart.AppVersion $ctx.Values.image.tag -}}
{{- $tag = default $tag (get $ctx.Values.image.replicaTags (toString $i)) -}}
{{- printf "%s:%s" $ctx.Values.image.repository $tag -}}
{{- end -}}

{{- define "beat.committeeConfigMap" -}}
{{- default (printf "%s-committee" (include "beat.fullname" .)) .Values.committee.existingConfigMap -}}
{{- end -}}

{{- define "beat.keysSecretPrefix" -}}
{{- default (printf "%s-keys" (include "beat.fullname" .)) .Values.keys.existingSecretPrefix -}}
{{- end -}}

{{/* The DNS name of replica i's pod on the headless peer Service. */}}
{{- define "beat.peerHost" -}}
{{- $ctx := index . 0 -}}{{- $i := index . 1 -}}
{{- printf "%s-%d-0.%s-peers.%s.svc.cluster.local" (include "beat.fullname" $ctx) (int $i) (include "beat.fullname" $ctx) $ctx.Release.Namespace -}}
{{- end -}}

{{/* Which services a pod runs. */}}
{{- define "beat.services" -}}
{{- if .Values.state.enabled -}}keystore gateway consensus state{{- else -}}keystore gateway consensus{{- end -}}
{{- end -}}

{{/* Container-level hardening shared by every container. */}}
{{- define "beat.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Checks the values the schema cannot express. */}}
{{- define "beat.validate" -}}
{{- if .Values.transports.i2p.enabled -}}
{{- fail "transports.i2p.enabled: the I2P transport is not available in this release of the gateway" -}}
{{- end -}}
{{- if and (not .Values.transports.tcp.enabled) (not .Values.transports.tor.enabled) -}}
{{- fail "transports: enable tcp or tor" -}}
{{- end -}}
{{- if and (eq .Values.api.mode "tls") (not .Values.api.tls.secretPrefix) -}}
{{- fail "api.mode=tls needs api.tls.secretPrefix: a Secret <prefix>-<i> per replica with the files of `beat keygen --tls`" -}}
{{- end -}}
{{- if .Values.committee.json -}}
{{- $c := fromJson .Values.committee.json -}}
{{- if not (hasKey $c "replicas") -}}
{{- fail "committee.json is not a committee file written by `beat keygen`" -}}
{{- end -}}
{{- if ne (len $c.replicas) (int .Values.replicas) -}}
{{- fail (printf "committee.json lists %d replicas but replicas is %d" (len $c.replicas) (int .Values.replicas)) -}}
{{- end -}}
{{- if ne (toString $c.params.variant) .Values.variant -}}
{{- fail (printf "committee.json runs %s but variant is %s" $c.params.variant .Values.variant) -}}
{{- end -}}
{{- end -}}
{{- end -}}
