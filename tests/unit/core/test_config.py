import pytest

from mlcore.config import load_settings
from mlcore.errors import ConfigurationError

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [
        "DATABASE_URL",
        "DB_HOST",
        "DB_PASSWORD",
        "STORAGE_URI",
        "S3_BUCKET",
        "S3_ENDPOINT_URL",
        "MLFLOW_TRACKING_URI",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "MLFLOW_S3_ENDPOINT_URL",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))


def test_embedded_default_needs_no_secrets(tmp_path):
    settings = load_settings()
    assert settings.sqlalchemy_url.get_backend_name() == "sqlite"
    assert settings.sqlalchemy_url.database == str(tmp_path / "home" / "mlpipeline.db")
    assert settings.effective_storage_uri == (tmp_path / "home" / "storage").as_uri()
    assert settings.effective_tracking_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert not settings.uses_postgres


def test_postgres_from_db_variables(monkeypatch):
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_PASSWORD", "s3cret-pw")
    url = load_settings().sqlalchemy_url
    assert (url.drivername, url.host, url.port, url.password) == (
        "postgresql+psycopg",
        "db.internal",
        6543,
        "s3cret-pw",
    )


@pytest.mark.parametrize("password", [None, "", "changeme"])
def test_postgres_refuses_missing_or_default_password(monkeypatch, password):
    monkeypatch.setenv("DB_HOST", "db.internal")
    if password is not None:
        monkeypatch.setenv("DB_PASSWORD", password)
    with pytest.raises(ConfigurationError, match="DB_PASSWORD"):
        load_settings()


def test_database_url_wins_and_is_checked(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:changeme@h/db")
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        load_settings()
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:good-pw@h:5433/db")
    url = load_settings().sqlalchemy_url
    assert url.drivername == "postgresql+psycopg" and url.port == 5433


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MAX_LENGTH", "abc", "MAX_LENGTH"),
        ("MAX_LENGTH", "2", "MAX_LENGTH"),
        ("BATCH_SIZE", "0", "BATCH_SIZE"),
        ("LEARNING_RATE", "-1", "LEARNING_RATE"),
        ("DB_PORT", "70000", "DB_PORT"),
        ("STORAGE_URI", "ftp://x", "STORAGE_URI"),
        ("S3_ENDPOINT_URL", "minio:9000", "S3_ENDPOINT_URL"),
        ("S3_BUCKET", "Bad_Bucket", "S3_BUCKET"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=expected):
        load_settings()


def test_storage_uri_from_bucket_and_endpoint_fallbacks(monkeypatch):
    monkeypatch.setenv("S3_BUCKET", "models-bucket")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    settings = load_settings()
    assert settings.effective_storage_uri == "s3://models-bucket"
    assert settings.effective_s3_endpoint == "http://127.0.0.1:9000"


def test_password_is_not_echoed_in_errors(monkeypatch):
    monkeypatch.setenv("DB_HOST", "h")
    monkeypatch.setenv("DB_PASSWORD", "changeme")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "got 'changeme'" not in str(info.value)
