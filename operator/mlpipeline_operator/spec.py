"""The ModelDeployment spec as pydantic models: the same fields, defaults and rules as the CRD's schema.

The API server already validates (CEL), so this mostly fills defaults for objects written before a default
existed and gives the handlers typed access. A spec that fails here is a DataValidationError with the field path.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlcore.errors import DataValidationError
from mlpipeline_operator.durations import parse_duration

_RESERVED_ENV = {
    "DEPLOYMENT_ID",
    "DEPLOYMENT_ROLE",
    "MODEL_VERSION",
    "PREDICTOR_MODEL_NAME",
    "PREDICTOR_STORAGE_URI",
    "PREDICTOR_MODEL_DIR",
}
_URI_SCHEMES = ("s3://", "gs://", "pvc://", "file://", "http://", "https://", "hf://")


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class ModelRef(_Model):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage_uri: str = Field(alias="storageUri", min_length=1, max_length=2048)

    @field_validator("storage_uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(_URI_SCHEMES) or " " in value:
            raise ValueError("must start with s3://, gs://, pvc://, file://, http(s):// or hf:// and hold no spaces")
        return value


class EnvVar(_Model):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = ""


class PredictorSpec(_Model):
    runtime: str | None = None
    model_format: str = Field("huggingface", alias="modelFormat")
    image: str | None = None
    min_replicas: int = Field(1, alias="minReplicas", ge=0, le=100)
    max_replicas: int = Field(1, alias="maxReplicas", ge=1, le=100)
    service_account_name: str | None = Field(None, alias="serviceAccountName")
    resources: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    )
    env: tuple[EnvVar, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> PredictorSpec:
        if self.runtime and self.image:
            raise ValueError("set either runtime or image, not both")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        reserved = sorted({e.name for e in self.env} & _RESERVED_ENV)
        if reserved:
            raise ValueError(f"env must not set {', '.join(reserved)}: the operator sets them")
        return self


class SecretRef(_Model):
    name: str = Field(min_length=1, max_length=253)


class ParentRef(_Model):
    name: str = Field(min_length=1)
    namespace: str | None = None


class RoutingSpec(_Model):
    parent_ref: ParentRef | None = Field(None, alias="parentRef")
    hostnames: tuple[str, ...] = ()


class AnalysisSpec(_Model):
    window: str = "5m"
    min_requests: int = Field(50, alias="minRequests", ge=1, le=1_000_000)
    max_error_rate: float = Field(0.05, alias="maxErrorRate", ge=0.0, le=1.0)
    max_latency_p95_ms: float = Field(1000.0, alias="maxLatencyP95Ms", gt=0.0, le=3_600_000.0)
    max_label_shift: float = Field(0.1, alias="maxLabelShift", ge=0.0, le=1.0)
    min_mean_confidence: float = Field(0.0, alias="minMeanConfidence", ge=0.0, le=1.0)
    # Relative gates: the candidate against the stable model over the same window.
    significance: float = Field(0.05, gt=0.0, le=0.5)
    max_latency_ratio: float = Field(1.2, alias="maxLatencyRatio", ge=1.0, le=100.0)
    label_test: Literal["G", "ChiSquare", "Off"] = Field("G", alias="labelTest")

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        _positive_duration(value)
        return value

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)


class Weights(_Model):
    stable: int = Field(50, ge=0, le=100)
    candidate: int = Field(50, ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self) -> Weights:
        if self.stable + self.candidate != 100:
            raise ValueError(f"weights must sum to 100 (got {self.stable} + {self.candidate})")
        if self.candidate == 0:
            raise ValueError("the candidate needs a weight above 0")
        return self


class Stickiness(_Model):
    header: str | None = Field(None, min_length=1, max_length=256)
    cookie: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one(self) -> Stickiness:
        if bool(self.header) == bool(self.cookie):
            raise ValueError("name exactly one of header or cookie")
        return self


class ABTestSpec(_Model):
    weights: Weights = Field(default_factory=Weights)
    stickiness: Stickiness | None = None
    min_samples: int = Field(500, alias="minSamples", ge=1, le=10_000_000)
    max_duration: str = Field("168h", alias="maxDuration")

    @field_validator("max_duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        _positive_duration(value)
        return value

    @property
    def max_duration_delta(self) -> timedelta:
        return parse_duration(self.max_duration)


class ShadowSpec(_Model):
    mirror_percent: float = Field(100.0, alias="mirrorPercent", gt=0.0, le=100.0)
    mirror_by: Literal["Predictor", "Gateway"] = Field("Predictor", alias="mirrorBy")
    min_agreement: float = Field(0.9, alias="minAgreement", ge=0.0, le=1.0)
    max_confidence_delta: float = Field(1.0, alias="maxConfidenceDelta", ge=0.0, le=1.0)
    on_failure: Literal["RollBack", "Keep"] = Field("RollBack", alias="onFailure")


Strategy = Literal["Canary", "ABTest", "Shadow", "Immediate"]


class RolloutSpec(_Model):
    strategy: Strategy = "Canary"
    steps: tuple[int, ...] = (10, 25, 50, 100)
    interval: str = "1m"
    max_failed_checks: int = Field(3, alias="maxFailedChecks", ge=1, le=100)
    auto_promote: bool = Field(True, alias="autoPromote")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    ab_test: ABTestSpec = Field(default_factory=ABTestSpec, alias="abTest")
    shadow: ShadowSpec = Field(default_factory=ShadowSpec)

    @model_validator(mode="after")
    def _strategy_fields(self) -> RolloutSpec:
        if self.strategy == "ABTest" and self.ab_test.stickiness is None:
            raise ValueError("strategy ABTest needs abTest.stickiness (a header or cookie that names the user)")
        return self

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("needs at least one step")
        if any(s < 1 or s > 100 for s in value):
            raise ValueError("every step is a traffic percent between 1 and 100")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be strictly increasing (e.g. [10, 25, 50, 100])")
        if value[-1] != 100:
            raise ValueError("must end at 100")
        return value

    @field_validator("interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        _positive_duration(value)
        return value

    @property
    def interval_delta(self) -> timedelta:
        return parse_duration(self.interval)


AlertKind = Literal["drift", "performance", "volume"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


class AlertTrigger(_Model):
    """Which open monitoring_alerts of this deployment start a retraining loop."""

    kinds: tuple[AlertKind, ...] = ("drift", "performance")
    min_severity: Severity = Field("warning", alias="minSeverity")

    @field_validator("kinds")
    @classmethod
    def _some(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one alert kind (drift, performance, volume)")
        return value

    def matches(self, alert_type: str, severity: str) -> bool:
        return alert_type in self.kinds and SEVERITY_RANK.get(severity, -1) >= SEVERITY_RANK[self.min_severity]


class TrainingJobSpec(_Model):
    """The batch/v1 Job that trains a candidate: the training image (python -m training_job) and its flags."""

    image: str | None = Field(None, min_length=1, max_length=512)  # unset: the operator's MLP_OPERATOR_TRAINING_IMAGE
    args: tuple[str, ...] = ()
    service_account_name: str | None = Field(None, alias="serviceAccountName", min_length=1, max_length=253)
    resources: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    )
    env: tuple[EnvVar, ...] = ()
    timeout: str = "2h"

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        _positive_duration(value)
        return value

    @property
    def timeout_delta(self) -> timedelta:
        return parse_duration(self.timeout)


RetrainingRollout = Literal["Canary", "ABTest", "Shadow", "None"]


class RetrainingSpec(_Model):
    """The closed loop: open alerts (or a schedule) -> a training Job -> a candidate -> a gated rollout."""

    on_alerts: AlertTrigger | None = Field(default_factory=AlertTrigger, alias="onAlerts")
    schedule: str | None = None
    job: TrainingJobSpec = Field(default_factory=TrainingJobSpec)
    cooldown: str = "1h"
    max_attempts: int = Field(3, alias="maxAttempts", ge=1, le=20)
    include_feedback: bool = Field(False, alias="includeFeedback")
    rollout: RetrainingRollout = "Canary"

    @field_validator("cooldown", "schedule")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            _positive_duration(value)
        return value

    @property
    def cooldown_delta(self) -> timedelta:
        return parse_duration(self.cooldown)

    @property
    def schedule_delta(self) -> timedelta | None:
        return parse_duration(self.schedule) if self.schedule else None


class ModelDeploymentSpec(_Model):
    model: ModelRef
    predictor: PredictorSpec = Field(default_factory=PredictorSpec)
    database_secret_ref: SecretRef | None = Field(None, alias="databaseSecretRef")
    storage_secret_ref: SecretRef | None = Field(None, alias="storageSecretRef")
    deployment_mode: Literal["RawDeployment", "Serverless"] = Field("RawDeployment", alias="deploymentMode")
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    retraining: RetrainingSpec | None = None

    @model_validator(mode="after")
    def _routing(self) -> ModelDeploymentSpec:
        strategy = self.rollout.strategy
        loop = self.retraining.rollout if self.retraining else "None"
        # The CRD's CEL rules say the same at admission; these hold for objects stored before a rule existed.
        if loop == "ABTest" and self.rollout.ab_test.stickiness is None:
            raise ValueError("retraining.rollout ABTest needs rollout.abTest.stickiness")
        if loop == "ABTest" and self.routing.parent_ref is None:
            raise ValueError("retraining.rollout ABTest splits the traffic with an HTTPRoute: set routing.parentRef")
        if loop == "Shadow" and self.rollout.shadow.mirror_by == "Gateway" and self.routing.parent_ref is None:
            raise ValueError("retraining.rollout Shadow with shadow.mirrorBy Gateway needs routing.parentRef")
        if loop in ("ABTest", "Shadow") and self.deployment_mode != "RawDeployment":
            raise ValueError(f"retraining.rollout {loop} needs deploymentMode RawDeployment")
        if strategy in ("ABTest", "Shadow") and self.deployment_mode != "RawDeployment":
            raise ValueError(f"strategy {strategy} needs deploymentMode RawDeployment")
        if strategy == "ABTest" and self.routing.parent_ref is None:
            raise ValueError("strategy ABTest splits traffic with an HTTPRoute: set routing.parentRef")
        if strategy == "Shadow" and self.rollout.shadow.mirror_by == "Gateway" and self.routing.parent_ref is None:
            raise ValueError("shadow.mirrorBy Gateway mirrors through an HTTPRoute: set routing.parentRef")
        return self


def _positive_duration(value: str) -> None:
    try:
        delta = parse_duration(value)
    except DataValidationError as exc:
        raise ValueError(str(exc)) from None
    if delta < timedelta(seconds=1):
        raise ValueError("must be at least 1s")


def parse_spec(raw: dict[str, Any] | Any) -> ModelDeploymentSpec:
    """A ModelDeployment's spec (a dict or kopf Spec) -> typed model; DataValidationError names each bad field."""
    try:
        return ModelDeploymentSpec.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise DataValidationError(f"invalid ModelDeployment spec: {problems}") from None


def with_strategy(spec: ModelDeploymentSpec, strategy: str) -> ModelDeploymentSpec:
    """The same spec with another rollout strategy: a retraining candidate rolls out under retraining.rollout."""
    return spec.model_copy(update={"rollout": spec.rollout.model_copy(update={"strategy": strategy})})
