"""The mlpipeline operator: reconciles ModelDeployments into KServe InferenceServices and rolls out canaries.

Pure logic lives in small modules (spec, durations, render, analysis, decisions, records); handlers.py wires it to
kopf and the Kubernetes API; app.py runs it. Run with `python -m mlpipeline_operator`.
"""

GROUP = "mlpipeline.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"

ISVC_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"

ROUTE_GROUP = "gateway.networking.k8s.io"
ROUTE_VERSION = "v1"
ROUTE_PLURAL = "httproutes"

FINALIZER = "mlpipeline.io/finalizer"
ANNOTATION_PROMOTE = "mlpipeline.io/promote"
ANNOTATION_ROLLBACK = "mlpipeline.io/rollback"
ANNOTATION_PAUSED = "mlpipeline.io/paused"

LABEL_DEPLOYMENT = "mlpipeline.io/deployment"
LABEL_ROLE = "mlpipeline.io/role"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "mlpipeline-operator"
