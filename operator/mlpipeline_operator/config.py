"""Operator settings from the environment (MLP_OPERATOR_*); database settings come from mlcore.config."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlcore.config import load_component_settings


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLP_OPERATOR_", extra="ignore", case_sensitive=False)

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch; empty = cluster-wide."
    )
    kubeconfig: str | None = Field(None, description="Kubeconfig file; unset = in-cluster, then $KUBECONFIG.")
    tick_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often readiness and analysis due-ness are checked."
    )
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics port; 0 disables.")
    metrics_address: str = Field("0.0.0.0", description="Address the /metrics server binds.")
    liveness_endpoint: str | None = Field("http://0.0.0.0:8080/healthz", description="kopf liveness probe URL.")
    peering_name: str = Field("mlpipeline-operator", min_length=1, description="kopf peering object name.")
    standalone: bool = Field(False, description="Skip peering (a single replica, or tests).")
    priority: int | None = Field(None, description="Peering priority; unset = random, so two replicas differ.")
    predictor_image: str = Field("ghcr.io/ml-pipeline/predictor:latest", min_length=1)
    database_secret: str | None = Field(None, description="Default Secret with the predictors' DB_* variables.")
    storage_secret: str | None = Field(None, description="Default Secret with the predictors' AWS_*/S3_* variables.")
    max_workers: int = Field(32, ge=1, le=512, description="Threads for the synchronous handlers.")
    verify_models: bool = Field(
        True, description="Check a new model's s3:// or file:// prefix (MANIFEST.json, files) before serving it."
    )
    migrate_database: bool = Field(False, description="Run the Alembic migrations at startup.")
    # --- policy (mlpipeline_operator.policy): what a ModelDeployment may name; the defaults above always pass ---
    allowed_images: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Image globs.")
    allowed_service_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ServiceAccount name globs; empty: the namespace's default only."
    )
    allowed_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Secret name globs for databaseSecretRef / storageSecretRef."
    )
    kopf_log_level: str = Field(
        "WARNING",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        description="Level of kopf's own per-object logs.",
    )
    canary_ready_deadline_s: float = Field(
        900.0, ge=0, description="A canary not Ready this long after it started is rolled back; 0 disables."
    )

    # --- the retraining loop (spec.retraining; mlpipeline_operator.loop) ---
    training_image: str = Field(
        "ghcr.io/ml-pipeline/training:latest", min_length=1, description="Default (always allowed) training image."
    )
    alert_poll_seconds: float = Field(
        30.0, gt=0, le=3600, description="How often open monitoring_alerts are read for each retraining deployment."
    )

    @field_validator("namespaces", "allowed_images", "allowed_service_accounts", "allowed_secrets", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("liveness_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value and not value.startswith("http://"):
            raise ValueError("must be an http:// URL such as http://0.0.0.0:8080/healthz")
        return value or None


def load_config(**overrides: object) -> OperatorConfig:
    """MLP_OPERATOR_* variables (plus overrides); invalid values raise ConfigurationError naming the variable."""
    return load_component_settings(OperatorConfig, "operator configuration", **overrides)
