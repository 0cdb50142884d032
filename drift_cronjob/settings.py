"""Settings of the drift job: thresholds, windows and outputs, read from DRIFT_* variables.

Database and storage come from the shared core settings (mlcore.config); this model adds only what the drift job
decides on its own. Every field is one environment variable, e.g. DRIFT_LOOKBACK_HOURS=24.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcore.config import load_component_settings


class DriftSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRIFT_", env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True
    )

    # --- windows ---
    lookback_hours: float = Field(
        24.0, gt=0, le=24 * 366, description="How far back a first window starts; the longest window one run analyses."
    )
    window_delay_s: float = Field(
        30.0, ge=0, le=3600, description="The window ends this long before now, so in-flight async log writes land."
    )
    min_rows: int = Field(100, ge=1, description="Fewer successful predictions in the window: skip the run.")
    reference_max_rows: int = Field(50_000, ge=100, description="Larger reference samples are subsampled.")
    sample_seed: int = 42
    fetch_batch_rows: int = Field(20_000, ge=100, le=1_000_000, description="Rows per database fetch.")

    # --- drift ---
    drift_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns that makes dataset drift.")
    drift_share_critical: float = Field(0.75, gt=0, le=1, description="From this share on, the alert is critical.")
    num_method: str | None = Field(None, description="Evidently stat test for numeric columns; default: auto.")
    cat_method: str | None = Field(None, description="Evidently stat test for categorical columns; default: auto.")
    num_threshold: float | None = Field(None, gt=0, description="Threshold for num_method; default: the method's.")
    cat_threshold: float | None = Field(None, gt=0, description="Threshold for cat_method; default: the method's.")
    text_descriptors: bool = Field(False, description="Also compare text descriptors (sentences, non-letters, links).")
    embeddings: bool = Field(False, description="Also compare sentence embeddings from the deployed model (slow).")
    embeddings_max_rows: int = Field(2_000, ge=50, description="Rows per side embedded for embedding drift.")
    embeddings_threshold: float = Field(0.55, gt=0.5, lt=1, description="ROC AUC of the domain classifier.")
    embeddings_batch_size: int = Field(64, ge=1, le=4096)

    # --- quality (feedback labels) ---
    min_feedback_rows: int = Field(50, ge=1, description="Fewer feedback labels in the window: no quality check.")
    max_accuracy_drop: float = Field(0.05, gt=0, lt=1, description="Absolute drop vs the model card's accuracy.")
    max_f1_drop: float = Field(0.05, gt=0, lt=1, description="Absolute drop vs the model card's F1.")
    positive_label: str = Field("positive", min_length=1, description="Positive class of the binary F1.")

    # --- volume ---
    volume_baseline_windows: int = Field(6, ge=1, le=100, description="Previous windows of equal length compared.")
    volume_min_baseline_windows: int = Field(3, ge=1, description="Non-empty previous windows needed for a verdict.")
    volume_drop_ratio: float = Field(0.3, gt=0, lt=1, description="Current/median below this: volume drop alert.")
    volume_surge_ratio: float = Field(3.0, gt=1, description="Current/median above this: volume surge alert.")

    # --- outputs ---
    # The chart passes these two without the prefix (a Secret key and a value shared with other tools).
    alert_webhook_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DRIFT_ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_URL"),
        description="Slack-compatible incoming webhook.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    webhook_attempts: int = Field(3, ge=1, le=10)
    webhook_backoff_s: float = Field(1.0, ge=0, le=60, description="First wait between webhook attempts.")
    pushgateway_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DRIFT_PUSHGATEWAY_URL", "PUSHGATEWAY_URL"),
        description="Prometheus Pushgateway, e.g. http://pushgateway:9091.",
    )
    pushgateway_job: str = Field("mlpipeline_drift", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    reports_prefix: str = Field("reports", pattern=r"^[A-Za-z0-9._\-/]+$")
    report_base_url: str | None = Field(
        None, description="Public base (e.g. an S3 console or gateway) to turn report keys into links in alerts."
    )

    # --- resilience ---
    db_retry_attempts: int = Field(5, ge=1, le=50, description="Tries to reach the database before giving up.")
    db_retry_wait_s: float = Field(2.0, ge=0, le=60, description="First wait between database tries (exponential).")

    @field_validator("pushgateway_url", "report_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("num_method", "cat_method")
    @classmethod
    def _known_stattest(cls, value: str | None, info: Any) -> str | None:
        if not value:
            return None
        # Imported here: the registry pulls in Evidently, which only the checks themselves need.
        from evidently.legacy.calculations.stattests import registry
        from evidently.legacy.core import ColumnType

        kind = ColumnType.Numerical if info.field_name == "num_method" else ColumnType.Categorical
        allowed = sorted(name for name, types in registry._registered_stat_tests.items() if kind in types)
        if value not in allowed:
            raise ValueError(f"unknown {kind.value} drift method; one of {allowed}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        if self.drift_share_critical < self.drift_share:
            raise ValueError("DRIFT_SHARE_CRITICAL must be >= DRIFT_SHARE")
        if self.volume_min_baseline_windows > self.volume_baseline_windows:
            raise ValueError("DRIFT_VOLUME_MIN_BASELINE_WINDOWS must be <= DRIFT_VOLUME_BASELINE_WINDOWS")
        return self


def load_drift_settings(**overrides: Any) -> DriftSettings:
    """Read DRIFT_* variables (plus overrides); invalid values raise ConfigurationError naming the variable."""
    return load_component_settings(DriftSettings, "drift settings", **overrides)
