{{- define "verbatim.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "verbatim.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "verbatim.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "verbatim.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "verbatim.fullname" .) -}}
{{- end -}}

{{- define "verbatim.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "verbatim.redisUrl" -}}
{{- if .Values.redis.bundled -}}
{{- printf "redis://%s-redis:6379/0" (include "verbatim.fullname" .) -}}
{{- else -}}
{{- required "redis.external.url is required when redis.bundled is false" .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{/*
The Celery queues a worker group consumes, as the worker itself names them (shared/queue.py
model_queues): one queue per model it serves, "verbatim.model.{name}", and where it serves the
default model also "verbatim", the queue of jobs queued before models had queues. A group with
no `models` serves `workers.catalogue`. Kombu's Redis transport keeps each queue as one list
per priority step (shared/queue.py PRIORITY_STEPS, 0 to 9): the queue's own name for step 0 and
"{queue}\x06\x16{step}" for the others (kombu.transport.redis.Channel.sep).
*/}}
{{- define "verbatim.groupQueues" -}}
{{- $group := .group -}}
{{- $workers := .root.Values.workers -}}
{{- if $group.queues -}}
{{- toJson $group.queues -}}
{{- else -}}
{{- $models := $group.models | default $workers.catalogue -}}
{{- $queues := list -}}
{{- range $models -}}
{{- $queues = append $queues (printf "verbatim.model.%s" .) -}}
{{- end -}}
{{- if has $workers.defaultModel $models -}}
{{- $queues = append $queues "verbatim" -}}
{{- end -}}
{{- toJson $queues -}}
{{- end -}}
{{- end -}}

{{/* The env of every Verbatim process: shared settings, Redis, storage, secrets. */}}
{{- define "verbatim.env" -}}
{{- $secret := include "verbatim.secretName" . -}}
- name: VERBATIM_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: redis-url}
- name: VERBATIM_DATA_DIR
  value: /var/lib/verbatim
{{- if eq .Values.storage.type "s3" }}
- name: VERBATIM_STORAGE
  value: s3
- name: VERBATIM_S3_ENDPOINT_URL
  value: {{ .Values.storage.s3.endpointUrl | quote }}
- name: VERBATIM_S3_BUCKET
  value: {{ required "storage.s3.bucket is required with storage.type s3" .Values.storage.s3.bucket | quote }}
- name: VERBATIM_S3_REGION
  value: {{ .Values.storage.s3.region | quote }}
- name: VERBATIM_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: s3-access-key-id}
- name: VERBATIM_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: s3-secret-access-key}
{{- else if ne .Values.storage.type "local" }}
{{- fail (printf "storage.type must be local or s3, not %q" .Values.storage.type) }}
{{- end }}
- name: VERBATIM_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: webhook-secret, optional: true}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The data volume: the shared uploads claim, or a pod-local emptyDir with S3 storage. */}}
{{- define "verbatim.dataVolume" -}}
- name: data
{{- if eq .Values.storage.type "local" }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.local.existingClaim | default (printf "%s-data" (include "verbatim.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{- define "verbatim.modelsVolume" -}}
- name: models
{{- if .Values.models.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* The pod security context of both images (uid/gid 10001 in Dockerfile.api and .worker). */}}
{{- define "verbatim.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
{{- end -}}

{{- define "verbatim.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
{{- end -}}

{{/* Scheduling of one component's pods: (dict "spec" .Values.api "root" $) */}}
{{- define "verbatim.scheduling" -}}
{{- with .spec.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
A worker group with workers.groupDefaults filled in, as JSON: a key the group sets wins, even
when it is 0, false or empty (so `gpus: 0` and `tolerations: []` mean what they say), and
`autoscaling` is filled key by key.
*/}}
{{- define "verbatim.group" -}}
{{- $defaults := .root.Values.workers.groupDefaults -}}
{{- $group := deepCopy .group -}}
{{- range $key, $value := $defaults -}}
{{- if not (hasKey $group $key) -}}
{{- $_ := set $group $key (deepCopy $value) -}}
{{- end -}}
{{- end -}}
{{- $scaling := deepCopy $group.autoscaling -}}
{{- range $key, $value := $defaults.autoscaling -}}
{{- if not (hasKey $scaling $key) -}}
{{- $_ := set $scaling $key $value -}}
{{- end -}}
{{- end -}}
{{- $_ := set $group "autoscaling" $scaling -}}
{{- toJson $group -}}
{{- end -}}
