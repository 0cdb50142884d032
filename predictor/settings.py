"""Predictor settings: one pydantic model read from PREDICTOR_* variables, CLI flags and the operator's identity env.

The identity variables (DEPLOYMENT_ID, DEPLOYMENT_ROLE, MODEL_VERSION) keep their bare names because the operator
sets them for every predictor; everything else is PREDICTOR_<FIELD>.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcore.config import load_component_settings
from mlcore.errors import ConfigurationError

# The longest text one request may carry (PREDICTOR_MAX_TEXT_CHARS): clients (the demo, benchmarks) size by it.
MAX_TEXT_CHARS = 5000


class PredictorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREDICTOR_", extra="ignore", populate_by_name=True)

    # --- what to serve ---
    model_name: str = Field("sentiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    storage_uri: str | None = Field(None, description="A published version: s3://b/models/<name>/<v> or file://")
    model_dir: Path | None = Field(None, description="A mounted version (KServe's storage initializer: /mnt/models)")
    download_dir: Path | None = Field(None, description="Where a storage_uri is fetched to (default: cache dir)")

    # --- identity stamped on every log row (set by the operator) ---
    deployment_id: str | None = Field(None, validation_alias=AliasChoices("DEPLOYMENT_ID", "deployment_id"))
    deployment_role: Literal["stable", "canary", "shadow"] = Field(
        "stable", validation_alias=AliasChoices("DEPLOYMENT_ROLE", "deployment_role")
    )
    model_version: str | None = Field(None, validation_alias=AliasChoices("MODEL_VERSION", "model_version"))

    # --- inference ---
    max_length: int | None = Field(None, ge=8, le=4096, description="Token limit; default: the model card's")
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=1, le=1_000_000)
    max_request_items: int = Field(64, ge=1, le=4096, description="Largest batch one request may send")
    max_batch_size: int = Field(32, ge=1, le=4096, description="Largest micro-batch the model runs at once")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="How long a batch may wait for company")
    max_pass_rows: int = Field(
        8,
        ge=1,
        le=4096,
        description="Texts per forward pass: a larger micro-batch runs in passes of texts sorted by length",
    )
    max_queued_requests: int = Field(1024, ge=1, le=1_000_000, description="Waiting requests beyond it get 503")
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="Intra-op threads of either runtime (torch or onnxruntime); default: CPUs"
    )
    runtime: Literal["auto", "onnx", "onnx-int8", "torch"] = Field(
        "auto", description="auto: int8 ONNX, else fp32 ONNX, else torch, as the version and install offer"
    )
    optimize: Literal["none", "int8"] = Field("none", description="torch runtime only: dynamic int8 quantization")

    # --- prediction logging ---
    log_predictions: bool = True
    log_queue_size: int = Field(10_000, ge=1)
    log_batch_rows: int = Field(500, ge=1, le=10_000)
    log_flush_interval_s: float = Field(0.2, gt=0, le=60)
    log_retry_max_wait_s: float = Field(5.0, gt=0, le=300)
    spill_dir: Path | None = Field(None, description="Where rows go while the DB is down (default: <home>/spill)")
    spill_max_bytes: int = Field(
        256 * 1024 * 1024, ge=4096, description="Cap on the spill files; rows beyond it are lost (counted, logged)"
    )
    migrate_db: bool = Field(False, description="Run the Alembic migrations before the first write")
    allow_embedded_db: bool = Field(
        False, description="Log to the embedded SQLite file even with DEPLOYMENT_ID set (the local demo only)"
    )

    # --- feedback (POST /v1/feedback) ---
    feedback_token_file: Path | None = Field(
        None, description="File holding the bearer token feedback needs (a mounted Secret key)"
    )
    feedback_token: SecretStr | None = Field(None, description="The token itself (prefer the file)")

    # --- shadow mirroring (set by the operator on the stable predictor of a Shadow rollout) ---
    mirror_url: str | None = Field(None, description="The shadow predictor's v1 :predict URL; unset: no mirroring")
    mirror_percent: float = Field(0.0, ge=0, le=100, description="Share of requests copied to the shadow")
    mirror_queue_size: int = Field(1000, ge=1, le=1_000_000, description="Copies waiting at most; more are dropped")
    mirror_timeout_s: float = Field(2.0, gt=0, le=60)

    # --- transport ---
    http_port: int = Field(8080, ge=0, le=65535)
    grpc_port: int = Field(8081, ge=0, le=65535)
    enable_grpc: bool = True
    # Room for max_request_items texts of max_text_chars, JSON-escaped; bodies over it get 413 while streaming.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=1024**3, description="Largest REST request body")
    # One log line per request (access log, kserve's per-request timings) costs CPU that inference needs;
    # Prometheus metrics cover the same ground. Turn them on to debug.
    access_log: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> PredictorSettings:
        if bool(self.storage_uri) == bool(self.model_dir):
            raise ValueError("give exactly one of storage_uri (--storage_uri) or model_dir (--model_dir)")
        return self

    def effective_feedback_token(self) -> str | None:
        """The token from the file (re-read at start; a rotated Secret needs a restart) or the setting."""
        if self.feedback_token_file is not None:
            try:
                token = self.feedback_token_file.read_text().strip()
            except OSError as exc:
                raise ConfigurationError(f"feedback_token_file {self.feedback_token_file}: {exc}") from None
            if len(token) < 16:
                raise ConfigurationError(f"feedback_token_file {self.feedback_token_file}: use at least 16 characters")
            return token
        return self.feedback_token.get_secret_value() if self.feedback_token else None

    def check_database(self, uses_postgres: bool) -> None:
        """A predictor the operator runs (DEPLOYMENT_ID set) must log where the canary analysis reads: PostgreSQL.
        Logging into its own SQLite file would make every canary analysis of it inconclusive."""
        if self.log_predictions and self.deployment_id and not uses_postgres and not self.allow_embedded_db:
            raise ConfigurationError(
                f"DEPLOYMENT_ID={self.deployment_id!r} is set but the database is the embedded SQLite file: "
                "set DB_HOST (with DB_USER, DB_PASSWORD, DB_NAME) or DATABASE_URL, or --no-log-predictions "
                "(PREDICTOR_ALLOW_EMBEDDED_DB=true is for the local demo)"
            )

    def effective_spill_dir(self, home: Path) -> Path:
        return self.spill_dir or home / "spill" / self.model_name

    def effective_torch_threads(self) -> int:
        return self.torch_threads or max(1, len(os.sched_getaffinity(0)))


def load_predictor_settings(**overrides: Any) -> PredictorSettings:
    """Environment plus explicit overrides (CLI flags); invalid values raise ConfigurationError."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_component_settings(PredictorSettings, "predictor configuration", **given)
