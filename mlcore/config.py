"""Settings shared by every component, read from environment variables (pydantic-settings).

The variable names are the contract with the Helm chart, the operator and the Kubernetes manifests:
DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD or DATABASE_URL; MLFLOW_TRACKING_URI; MODEL_NAME, MAX_LENGTH,
NUM_LABELS, BATCH_SIZE, LEARNING_RATE, NUM_EPOCHS; S3_ENDPOINT_URL, S3_BUCKET, STORAGE_URI (credentials come through
the standard AWS_* variables that boto3 reads itself). With none of the database or S3 variables set, everything
runs embedded: a SQLite file and local file storage under MLP_HOME.

Every component loads its settings the same way, `load_component_settings(Model, "what")`: a pydantic-settings
model read from the environment (plus overrides), invalid values raising one ConfigurationError that names each
variable (and its field) and shows the value it got, except for secrets (passwords, tokens, URLs that may carry
credentials), whose values are never echoed. Nothing outside a settings model reads os.environ.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from mlcore.errors import ConfigurationError

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
# Field names whose values are never shown in an error, whatever their type.
_SECRET_NAME = re.compile(r"password|passwd|token|secret|credential|webhook|database_url|optuna_storage|_key\b")
# The drivers PostgreSQL URLs commonly name; the images ship psycopg 3 only, so these are mapped to it.
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg2", "postgres+psycopg2", "postgresql+psycopg2cffi"}

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

    # --- training job extras (read here so that no component reads the environment itself) ---
    optuna_storage: SecretStr | None = Field(None, description="Optuna storage URL; default: the job's database.")
    mlp_precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="Training precision.")
    git_revision: str | None = Field(None, description="Set at image build time; stamped on model cards.")

    @field_validator("mlp_precision", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

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


class StorageEnvironment(BaseSettings):
    """What the storage backends read when called without explicit settings (read afresh on every call)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    s3_endpoint_url: str | None = None
    aws_endpoint_url_s3: str | None = None
    aws_endpoint_url: str | None = None
    mlflow_s3_endpoint_url: str | None = None
    storage_retry_attempts: int = Field(4, ge=1, le=100, description="Attempts per S3 operation.")

    @property
    def endpoint(self) -> str | None:
        """MinIO users often set only what their other tools read: the first of these that is set."""
        return self.s3_endpoint_url or self.aws_endpoint_url_s3 or self.aws_endpoint_url or self.mlflow_s3_endpoint_url


class ProcessEnvironment(BaseSettings):
    """What is read before (or beside) a component's settings: how to log, progress bars, offline mode. Every field
    is plain text, read leniently by its user (an unknown LOG_FORMAT means auto), so reading it never fails."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    log_format: str = "auto"
    log_level: str = "INFO"
    mlp_progress: str = "auto"
    hf_hub_offline: str = ""
    hf_datasets_offline: str = ""
    mlp_setup_timings: str | None = None  # `make run`'s own step timings, for the demo's summary


def process_environment() -> ProcessEnvironment:
    """Read afresh on every call (tests and `make run` change the environment between calls)."""
    return ProcessEnvironment()


def storage_environment() -> StorageEnvironment:
    return load_component_settings(StorageEnvironment, "storage configuration")


def s3_endpoint_from_env() -> str | None:
    """The S3 endpoint as the environment says now."""
    return storage_environment().endpoint


def _parse_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ValueError(f"DATABASE_URL: not a database URL ({exc})") from exc
    # Plain postgresql:// means psycopg 3 here, the only driver the images ship; the psycopg2 URLs most users write
    # use it too unless psycopg2 itself is installed (it would fail with ModuleNotFoundError otherwise).
    if url.drivername in _POSTGRES_DRIVERS:
        if url.drivername.endswith(("psycopg2", "psycopg2cffi")):
            if _installed(url.drivername.partition("+")[2]):
                return url
            _note_driver_mapped(url.drivername)
        url = url.set(drivername="postgresql+psycopg")
    return url


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=8)
def _note_driver_mapped(drivername: str) -> None:
    """Said once per process and driver: the URL is parsed on every use."""
    log.info(
        "DATABASE_URL names the %s driver, which is not installed: using postgresql+psycopg (psycopg 3)", drivername
    )


# --- one loader and one error format for every component's settings -------------------------------------------


def _is_secret(model: type[BaseSettings], field: str | None) -> bool:
    if field is None:
        return True  # a model-level error: its input is every value at once
    if _SECRET_NAME.search(field.lower()):
        return True
    info = model.model_fields.get(field)
    if info is None:
        return False
    return SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr


def _field_and_variable(model: type[BaseSettings], name: str) -> tuple[str | None, str]:
    """(field, environment variable) for an error location: a field name, or the alias it was read from."""
    prefix = str(model.model_config.get("env_prefix") or "")
    if name in model.model_fields:
        alias = model.model_fields[name].validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return name, alias.choices[0].upper()
        return name, f"{prefix}{name}".upper()
    for field, info in model.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if isinstance(alias, str) else []
        if any(isinstance(c, str) and c.lower() == name.lower() for c in choices):
            return field, name.upper()
    return None, name.upper()


def explain_validation_error(model: type[BaseSettings], error: ValidationError) -> str:
    """`VARIABLE (field): what is wrong (got 'value')` per problem; a secret's value is never shown."""
    parts = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            parts.append(message)
            continue
        field, variable = _field_and_variable(model, str(item["loc"][0]))
        where = variable if field is None or field.upper() == variable else f"{variable} ({field})"
        value = item.get("input")
        shown = "" if _is_secret(model, field) or isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{where}: {message}{shown}")
    return "; ".join(parts)


def load_component_settings(model: type[SettingsT], what: str, **overrides: Any) -> SettingsT:
    """`model` read from the environment plus `overrides`; ConfigurationError "invalid <what>: ..." otherwise."""
    try:
        return model(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid {what}: {explain_validation_error(model, exc)}") from None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); invalid values raise ConfigurationError."""
    return load_component_settings(Settings, "configuration", **overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return load_settings()
