{{/* Names ------------------------------------------------------------------------------------------ */}}
{{- define "ml-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ml-pipeline.fullname" -}}
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

{{/* "<fullname>-<component>", kept within the 63 characters of a label value / DNS label. */}}
{{- define "ml-pipeline.componentName" -}}
{{- printf "%s-%s" (include "ml-pipeline.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{/* Labels ----------------------------------------------------------------------------------------- */}}
{{- define "ml-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ml-pipeline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ml-pipeline.labels" -}}
{{ include "ml-pipeline.selectorLabels" . }}
app.kubernetes.io/part-of: ml-pipeline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Images: registry/repository@digest or registry/repository:tag ----------------------------------- */}}
{{- define "ml-pipeline.image" -}}
{{- $img := .image -}}
{{- $repo := $img.repository -}}
{{- with .root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default (default .root.Chart.AppVersion .root.Values.image.tag) $img.tag) -}}
{{- end -}}
{{- end }}

{{/* Credentials ------------------------------------------------------------------------------------ */}}
{{- define "ml-pipeline.devSecretName" -}}
{{- include "ml-pipeline.componentName" (dict "root" . "component" "credentials") }}
{{- end }}

{{- define "ml-pipeline.dbSecretName" -}}
{{- default (include "ml-pipeline.devSecretName" .) .Values.database.existingSecret }}
{{- end }}

{{- define "ml-pipeline.s3SecretName" -}}
{{- default (include "ml-pipeline.devSecretName" .) .Values.s3.existingSecret }}
{{- end }}

{{- define "ml-pipeline.configMapName" -}}
{{- include "ml-pipeline.componentName" (dict "root" . "component" "config") }}
{{- end }}

{{- define "ml-pipeline.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "ml-pipeline.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ml-pipeline.runtimeName" -}}
{{- default (include "ml-pipeline.componentName" (dict "root" . "component" "predictor")) .Values.predictor.servingRuntime.name }}
{{- end }}

{{/* Effective endpoints: explicit values win, then the dev dependencies. */}}
{{- define "ml-pipeline.dbHost" -}}
{{- if .Values.config.dbHost }}{{ .Values.config.dbHost }}{{ else if .Values.dev.enabled }}{{ include "ml-pipeline.componentName" (dict "root" . "component" "postgres") }}.{{ .Release.Namespace }}.svc{{ end }}
{{- end }}

{{- define "ml-pipeline.s3Endpoint" -}}
{{- if .Values.config.s3EndpointUrl }}{{ .Values.config.s3EndpointUrl }}{{ else if .Values.dev.enabled }}http://{{ include "ml-pipeline.componentName" (dict "root" . "component" "minio") }}.{{ .Release.Namespace }}.svc:9000{{ end }}
{{- end }}

{{- define "ml-pipeline.mlflowUri" -}}
{{- if .Values.config.mlflowTrackingUri }}{{ .Values.config.mlflowTrackingUri }}{{ else if .Values.dev.enabled }}http://{{ include "ml-pipeline.componentName" (dict "root" . "component" "mlflow") }}.{{ .Release.Namespace }}.svc:5000{{ end }}
{{- end }}

{{- define "ml-pipeline.storageUri" -}}
{{- default (printf "s3://%s" .Values.config.s3Bucket) .Values.config.storageUri }}
{{- end }}

{{/* Non-secret settings as a literal env list (for the cluster-scoped runtime, which cannot reference a
     ConfigMap of the release namespace from other namespaces). */}}
{{- define "ml-pipeline.settingsEnv" -}}
{{- range $k, $v := (include "ml-pipeline.settings" . | fromYaml) }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* The settings map: the ConfigMap's data and the runtime's env are both rendered from it. */}}
{{- define "ml-pipeline.settings" -}}
{{- $c := .Values.config -}}
{{- with (include "ml-pipeline.dbHost" .) }}
DB_HOST: {{ . | quote }}
{{- end }}
DB_PORT: {{ $c.dbPort | quote }}
DB_NAME: {{ $c.dbName | quote }}
DB_USER: {{ $c.dbUser | quote }}
{{- with (include "ml-pipeline.mlflowUri" .) }}
MLFLOW_TRACKING_URI: {{ . | quote }}
{{- end }}
MLFLOW_EXPERIMENT: {{ $c.mlflowExperiment | quote }}
STORAGE_URI: {{ include "ml-pipeline.storageUri" . | quote }}
S3_BUCKET: {{ $c.s3Bucket | quote }}
{{- with (include "ml-pipeline.s3Endpoint" .) }}
S3_ENDPOINT_URL: {{ . | quote }}
MLFLOW_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
AWS_DEFAULT_REGION: {{ $c.awsRegion | quote }}
MODEL_NAME: {{ $c.modelName | quote }}
REGISTERED_MODEL_NAME: {{ $c.registeredModelName | quote }}
MAX_LENGTH: {{ $c.maxLength | quote }}
LOG_LEVEL: {{ $c.logLevel | quote }}
MLP_HOME: "/tmp/mlpipeline"
MLP_CACHE_DIR: "/cache/ml-pipeline"
HF_HOME: "/cache/huggingface"
{{- range $k, $v := $c.extraEnv }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* Secret env: DB password and S3 keys, by reference only. */}}
{{- define "ml-pipeline.secretEnv" -}}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ml-pipeline.dbSecretName" . }}
      key: {{ .Values.database.passwordKey }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "ml-pipeline.s3SecretName" . }}
      key: {{ .Values.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ml-pipeline.s3SecretName" . }}
      key: {{ .Values.s3.secretAccessKeyKey }}
{{- end }}

{{/* A map of extra env vars as a list. */}}
{{- define "ml-pipeline.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* Writable scratch space under a read-only root filesystem. */}}
{{- define "ml-pipeline.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratchSizeLimit }}
- name: cache
  emptyDir:
    sizeLimit: {{ .Values.scratchSizeLimit }}
{{- end }}

{{- define "ml-pipeline.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /cache
{{- end }}

{{- define "ml-pipeline.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "ml-pipeline.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{- define "ml-pipeline.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress pieces. */}}
{{- define "ml-pipeline.egressDNS" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
{{- define "ml-pipeline.egressTo" -}}
- to:
    {{- range .root.Values.networkPolicy.egressCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- if .root.Values.dev.enabled }}
    - podSelector:
        matchLabels:
          app.kubernetes.io/instance: {{ .root.Release.Name }}
    {{- end }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}

{{- define "ml-pipeline.peeringName" -}}
{{- default (include "ml-pipeline.componentName" (dict "root" . "component" "operator")) .Values.operator.peering.name }}
{{- end }}
