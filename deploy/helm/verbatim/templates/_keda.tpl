{{/*
A worker group's ScaledObject: (dict "root" $ "group" $group "name" $deployment "queues" $list).

KEDA's Redis scaler reads one key per trigger. Kombu's Redis transport keeps a queue as one list
per priority step (shared/queue.py PRIORITY_STEPS: 0 to 9, fair scheduling's priorities): step 0
is the queue's own name and step N is "{queue}\x06\x16{N}" (kombu.transport.redis.Channel.sep
then the step). So each list has its trigger, and `scalingModifiers` sums them into the one
metric the HPA sees. A worker's held jobs are in no list: those it received but has not started
are the hash `verbatim:received`, and running ones the sorted set `verbatim:jobs:processing`
(shared/state/jobs.py, shared/state/requeue.py); KEDA's scaler counts a hash (HLEN) and a sorted
set (ZCARD) as it counts a list, so they join the sum and a busy worker never looks idle.
*/}}
{{- define "verbatim.scaledObject" -}}
{{- $root := .root }}
{{- $scaling := .group.autoscaling }}
{{- $redis := $root.Values.redis }}
{{- if lt (int $scaling.jobsPerWorker) 1 }}
{{- fail (printf "workers.groups[%s].autoscaling.jobsPerWorker must be 1 or more" .group.name) }}
{{- end }}
{{- if or (lt (int $scaling.minReplicas) 1) (lt (int $scaling.maxReplicas) (int $scaling.minReplicas)) }}
{{- fail (printf "workers.groups[%s].autoscaling: need 1 <= minReplicas <= maxReplicas (scaleToZero for none)" .group.name) }}
{{- end }}
{{- $perWorker := $scaling.jobsPerWorker | toString }}
{{- $names := list }}
{{- $triggers := list }}
{{- range $queue := .queues }}
{{- range $step := until 10 }}
{{- $list := ternary $queue (printf "%s\x06\x16%d" $queue $step) (eq $step 0) }}
{{- $trigger := printf "q_%s_p%d" (regexReplaceAll "[^A-Za-z0-9]" $queue "_") $step }}
{{- $names = append $names $trigger }}
{{- $triggers = append $triggers (dict "name" $trigger "key" $list) }}
{{- end }}
{{- end }}
{{- if $scaling.countHeld }}
{{- $names = concat $names (list "held_received" "held_processing") }}
{{- $triggers = append $triggers (dict "name" "held_received" "key" "verbatim:received") }}
{{- $triggers = append $triggers (dict "name" "held_processing" "key" "verbatim:jobs:processing") }}
{{- end }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ .name }}
  labels:
    {{- include "verbatim.labels" $root | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ .name }}
  minReplicaCount: {{ ternary 0 $scaling.minReplicas $scaling.scaleToZero }}
  maxReplicaCount: {{ $scaling.maxReplicas }}
  pollingInterval: {{ $scaling.pollingInterval }}
  cooldownPeriod: {{ $scaling.cooldownPeriod }}
  advanced:
    scalingModifiers:
      # Queued at every priority, plus held: the jobs this group has to do.
      formula: {{ join " + " $names | quote }}
      target: {{ $perWorker | quote }}
      activationTarget: "0"
      metricType: AverageValue
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: {{ $scaling.scaleDownStabilizationSeconds }}
          policies:
            - {type: Pods, value: 1, periodSeconds: 60}
  triggers:
    {{- range $triggers }}
    - name: {{ .name }}
      {{- if $redis.bundled }}
      type: redis
      metadata:
        address: {{ printf "%s-redis.%s.svc:6379" (include "verbatim.fullname" $root) $root.Release.Namespace | quote }}
        databaseIndex: "0"
      {{- else if $redis.external.sentinel.addresses }}
      type: redis-sentinel
      metadata:
        addresses: {{ $redis.external.sentinel.addresses | quote }}
        sentinelMaster: {{ required "redis.external.sentinel.masterName is required with Sentinel addresses" $redis.external.sentinel.masterName | quote }}
        databaseIndex: {{ $redis.external.database | quote }}
        enableTLS: {{ $redis.external.tls | quote }}
      {{- else }}
      type: redis
      metadata:
        address: {{ required "redis.external.address (host:port, for KEDA) is required when redis.bundled is false" $redis.external.address | quote }}
        databaseIndex: {{ $redis.external.database | quote }}
        enableTLS: {{ $redis.external.tls | quote }}
      {{- end }}
        listName: {{ .key | toJson }}
        listLength: {{ $perWorker | quote }}
        activationListLength: "0"
      {{- if and (not $redis.bundled) $redis.external.password }}
      authenticationRef:
        name: {{ include "verbatim.fullname" $root }}-redis
      {{- end }}
    {{- end }}
{{- end -}}
