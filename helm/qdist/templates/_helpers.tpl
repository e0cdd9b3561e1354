{{/* Names: the release-based prefix every object shares (qdist.k8s.settings.fullname mirrors it). */}}
{{- define "qdist.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qdist.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "qdist.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "qdist.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "mlflow") */}}
{{- define "qdist.selector" -}}
app.kubernetes.io/name: {{ include "qdist.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "qdist.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "qdist.gpuImage" -}}
{{- printf "%s:%s" .Values.gpuImage.repository (default .Chart.AppVersion .Values.gpuImage.tag) -}}
{{- end -}}

{{- define "qdist.mlflowImage" -}}
{{- printf "%s:%s" .Values.mlflow.image.repository (default .Chart.AppVersion .Values.mlflow.image.tag) -}}
{{- end -}}

{{- define "qdist.mlflowUri" -}}
{{- printf "http://%s-mlflow:%v" (include "qdist.fullname" .) .Values.mlflow.port -}}
{{- end -}}

{{/* The storage claim of the Ray pods. */}}
{{- define "qdist.storeClaim" -}}
{{- if .Values.storage.pvc.create -}}
{{- printf "%s-store" (include "qdist.fullname" .) -}}
{{- else -}}
{{- required "storage.pvc.existingClaim is required when storage.pvc.create is false: name a ReadWriteMany claim" .Values.storage.pvc.existingClaim -}}
{{- end -}}
{{- end -}}

{{/* Where job outputs go: a folder on the claim, or an S3 prefix. */}}
{{- define "qdist.outputBase" -}}
{{- if eq .Values.storage.type "s3" -}}
{{- printf "s3://%s/%s/runs" (required "storage.s3.bucket is required with storage.type s3: name an existing bucket" .Values.storage.s3.bucket) (.Values.storage.s3.prefix | trimSuffix "/") | replace "//runs" "/runs" -}}
{{- else -}}
{{- printf "%s/runs" (.Values.storage.pvc.mountPath | trimSuffix "/") -}}
{{- end -}}
{{- end -}}

{{/* S3 environment (endpoint, region, credentials by reference): (dict "root" $ "mlflow" bool) */}}
{{- define "qdist.s3Env" -}}
{{- $s3 := .root.Values.storage.s3 -}}
- name: AWS_DEFAULT_REGION
  value: {{ $s3.region | quote }}
{{- if $s3.endpoint }}
- name: {{ if .mlflow }}MLFLOW_S3_ENDPOINT_URL{{ else }}AWS_ENDPOINT_URL{{ end }}
  value: {{ $s3.endpoint | quote }}
{{- end }}
{{- if and $s3.addressingStyle (not .mlflow) }}
- name: QDIST_S3_ADDRESSING_STYLE
  value: {{ $s3.addressingStyle | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.credentialsSecret.name }}
      key: {{ $s3.credentialsSecret.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.credentialsSecret.name }}
      key: {{ $s3.credentialsSecret.secretAccessKeyKey }}
{{- end -}}

{{/* Environment of a Ray container: (dict "root" $ "role" "head|cpu|gpu|qpu") */}}
{{- define "qdist.rayEnv" -}}
{{- $v := .root.Values -}}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
{{- if eq $v.storage.type "s3" }}
{{ include "qdist.s3Env" (dict "root" .root "mlflow" false) }}
{{- end }}
{{- if and (eq .role "head") $v.secrets.pseudonymKey }}
- name: QDIST_PSEUDONYM_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.pseudonymKey }}
      key: QDIST_PSEUDONYM_KEY
{{- end }}
{{- if and (has .role (list "head" "qpu")) $v.secrets.ibmQuantum }}
- name: QISKIT_IBM_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.ibmQuantum }}
      key: QISKIT_IBM_TOKEN
- name: QISKIT_IBM_INSTANCE
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.ibmQuantum }}
      key: QISKIT_IBM_INSTANCE
      optional: true
- name: QISKIT_IBM_CHANNEL
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.ibmQuantum }}
      key: QISKIT_IBM_CHANNEL
      optional: true
{{- end }}
{{- end -}}

{{/* A Ray pod template: (dict "root" $ "role" ... "resources" map "gpu" bool "nodeSelector" map
     "tolerations" list "jobConfigMap" name-or-empty) */}}
{{- define "qdist.rayPod" -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "qdist.labels" .root | nindent 4 }}
    app.kubernetes.io/component: ray-{{ .role }}
spec:
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with .nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ if eq .role "head" }}ray-head{{ else }}ray-worker{{ end }}
      image: {{ if .gpu }}{{ include "qdist.gpuImage" .root }}{{ else }}{{ include "qdist.image" .root }}{{ end }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      env:
        {{- include "qdist.rayEnv" (dict "root" .root "role" .role) | nindent 8 }}
      {{- if eq .role "head" }}
      ports:
        - {containerPort: 6379, name: gcs-server}
        - {containerPort: 8265, name: dashboard}
        - {containerPort: 10001, name: client}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - {name: dshm, mountPath: /dev/shm}
        {{- if eq $v.storage.type "pvc" }}
        - {name: store, mountPath: {{ $v.storage.pvc.mountPath }}}
        {{- end }}
        {{- if .jobConfigMap }}
        - {name: job, mountPath: /etc/qdist/job, readOnly: true}
        {{- end }}
  volumes:
    - name: dshm
      emptyDir: {medium: Memory}
    {{- if eq $v.storage.type "pvc" }}
    - name: store
      persistentVolumeClaim:
        claimName: {{ include "qdist.storeClaim" .root }}
    {{- end }}
    {{- if .jobConfigMap }}
    - name: job
      configMap:
        name: {{ .jobConfigMap }}
    {{- end }}
{{- end -}}

{{/* The spec of a Ray cluster (RayCluster.spec, RayJob.spec.rayClusterSpec):
     (dict "root" $ "jobConfigMap" name-or-empty) */}}
{{- define "qdist.rayClusterSpec" -}}
{{- $v := .root.Values -}}
{{- $root := .root -}}
rayVersion: {{ $v.rayVersion | quote }}
enableInTreeAutoscaling: {{ $v.ray.autoscaling.enabled }}
{{- if $v.ray.autoscaling.enabled }}
autoscalerOptions:
  upscalingMode: {{ $v.ray.autoscaling.upscalingMode }}
  idleTimeoutSeconds: {{ $v.ray.autoscaling.idleTimeoutSeconds }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  resources:
    {{- toYaml $v.ray.autoscaling.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
{{- end }}
headGroupSpec:
  rayStartParams:
    dashboard-host: "0.0.0.0"
    num-cpus: "0"
  template:
    {{- include "qdist.rayPod" (dict "root" $root "role" "head" "resources" $v.ray.head.resources "gpu" false "nodeSelector" $v.ray.head.nodeSelector "tolerations" $v.ray.head.tolerations "jobConfigMap" .jobConfigMap) | nindent 4 }}
workerGroupSpecs:
{{- with $v.ray.cpuWorkers }}
{{- if .enabled }}
  - groupName: cpu-workers
    replicas: {{ .minReplicas }}
    minReplicas: {{ .minReplicas }}
    maxReplicas: {{ .maxReplicas }}
    rayStartParams: {}
    template:
      {{- $res := dict "requests" (dict "cpu" (toString .cpus) "memory" .memory) "limits" (dict "cpu" (toString .cpus) "memory" .memory) }}
      {{- include "qdist.rayPod" (dict "root" $root "role" "cpu" "resources" $res "gpu" false "nodeSelector" .nodeSelector "tolerations" .tolerations "jobConfigMap" "") | nindent 6 }}
{{- end }}
{{- end }}
{{- with $v.ray.gpuWorkers }}
{{- if .enabled }}
  - groupName: gpu-workers
    replicas: {{ .minReplicas }}
    minReplicas: {{ .minReplicas }}
    maxReplicas: {{ .maxReplicas }}
    rayStartParams: {}
    template:
      {{- $res := dict "requests" (dict "cpu" (toString .cpus) "memory" .memory) "limits" (dict "cpu" (toString .cpus) "memory" .memory "nvidia.com/gpu" (toString .gpus)) }}
      {{- include "qdist.rayPod" (dict "root" $root "role" "gpu" "resources" $res "gpu" true "nodeSelector" .nodeSelector "tolerations" .tolerations "jobConfigMap" "") | nindent 6 }}
{{- end }}
{{- end }}
{{- with $v.ray.qpuWorkers }}
{{- if .enabled }}
  - groupName: qpu-workers
    replicas: {{ .replicas }}
    minReplicas: {{ .replicas }}
    maxReplicas: {{ .replicas }}
    rayStartParams:
      resources: {{ `"{\"qpu\": 1}"` | quote }}
    template:
      {{- include "qdist.rayPod" (dict "root" $root "role" "qpu" "resources" .resources "gpu" false "nodeSelector" dict "tolerations" list "jobConfigMap" "") | nindent 6 }}
{{- end }}
{{- end }}
{{- end -}}
