"""Settings shared by every component, read from environment variables (pydantic-settings).

The variable names are the contract with the Helm chart, the operator and the Kubernetes manifests:
DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD or DATABASE_URL; MLFLOW_TRACKING_URI; MODEL_NAME, MAX_LENGTH,
NUM_LABELS, BATCH_SIZE, LEARNING_RATE, NUM_EPOCHS; S3_ENDPOINT_URL, S3_BUCKET, STORAGE_URI (credentials come through
the standard AWS_* variables that boto3 reads itself). With none of the database or S3 variables set, everything
runs embedded: a SQLite file and local file storage under MLP_HOME.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from mlcore.errors import ConfigurationError

# Passwords that ship in examples and must never reach a real database.
_REFUSED_PASSWORDS = {"", "changeme", "change-me", "password", "postgres"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- where the embedded default keeps its state ---
    mlp_home: Path = Field(Path(".mlpipeline"), description="Directory of the embedded default's state.")
    mlp_cache_dir: Path = Field(Path.home() / ".cache" / "ml-pipeline", description="Cache of offline data and models.")

    # --- database ---
    database_url: str | None = Field(None, description="SQLAlchemy URL; overrides the DB_* variables.")
    db_host: str | None = Field(None, description="PostgreSQL host; unset means the embedded SQLite file.")
    db_port: int = Field(5432, ge=1, le=65535)
    db_name: str = Field("mlpipeline", min_length=1)
    db_user: str = Field("mlpipeline", min_length=1)
    db_password: SecretStr | None = None
    db_pool_size: int = Field(5, ge=1, le=100)
    db_max_overflow: int = Field(10, ge=0, le=100)
    db_pool_recycle_s: int = Field(1800, ge=-1)
    db_pool_timeout_s: float = Field(30.0, gt=0)
    # PostgreSQL statement_timeout for every session (0: none); migrations lift it for their own session.
    db_statement_timeout_s: float = Field(60.0, ge=0)

    # --- MLflow ---
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = Field("sentiment-classification", min_length=1)

    # --- model and training hyper-parameters ---
    model_name: str = Field("auto", min_length=1, description="Pretrained model: hub name, local path or 'auto'.")
    registered_model_name: str = Field("sentiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    max_length: int = Field(256, ge=8, le=4096)
    num_labels: int = Field(2, ge=2, le=1000)
    batch_size: int = Field(16, ge=1, le=4096)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    num_epochs: float = Field(3.0, gt=0, le=100)

    # --- storage ---
    storage_uri: str | None = Field(None, description="Base URI for models and reports: s3://bucket[/p] or file://")
    s3_endpoint_url: str | None = Field(None, description="S3 API endpoint (MinIO); unset means AWS.")
    s3_bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("s3://", "file://", "/")):
            raise ValueError("must be s3://bucket[/prefix], file:///absolute/path or an absolute path")
        return value or None

    @model_validator(mode="after")
    def _postgres_needs_a_real_password(self) -> Settings:
        if self.database_url:
            url = _parse_url(self.database_url)
            if url.get_backend_name() == "postgresql" and (url.password or "") in _REFUSED_PASSWORDS:
                raise ValueError(
                    "DATABASE_URL: a PostgreSQL URL needs a real password (empty or 'changeme' is refused)"
                )
        elif self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            if password in _REFUSED_PASSWORDS:
                raise ValueError(
                    "DB_PASSWORD: required when DB_HOST is set; empty or a well-known default such as "
                    "'changeme' is refused"
                )
        return self

    # --- derived values ---
    @property
    def home(self) -> Path:
        return self.mlp_home.expanduser().resolve()

    @property
    def uses_postgres(self) -> bool:
        return self.sqlalchemy_url.get_backend_name() == "postgresql"

    @property
    def sqlalchemy_url(self) -> URL:
        if self.database_url:
            return _parse_url(self.database_url)
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else None
            return URL.create(
                "postgresql+psycopg",
                username=self.db_user,
                password=password,
                host=self.db_host,
                port=self.db_port,
                database=self.db_name,
            )
        return URL.create("sqlite+pysqlite", database=str(self.home / "mlpipeline.db"))

    @property
    def effective_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def effective_storage_uri(self) -> str:
        if self.storage_uri:
            return self.storage_uri
        if self.s3_bucket:
            return f"s3://{self.s3_bucket}"
        return (self.home / "storage").as_uri()

    @property
    def effective_s3_endpoint(self) -> str | None:
        return self.s3_endpoint_url or s3_endpoint_from_env()


def s3_endpoint_from_env() -> str | None:
    """The S3 endpoint as the environment says now; MinIO users often set only what their other tools read."""
    for name in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def _parse_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ValueError(f"DATABASE_URL: not a database URL ({exc})") from exc
    # Plain postgresql:// means psycopg 3 here, the only driver the images ship.
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]).upper() or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if field.endswith("PASSWORD") or isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{field}: {message}{shown}" if field != "settings" else message)
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); invalid values raise ConfigurationError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {_explain(exc)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return load_settings()
