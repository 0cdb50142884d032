"""The shared contracts of mlcore: one settings loader, the model version, the prediction row, time helpers."""

from __future__ import annotations

import logging
import typing
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcore.config import load_component_settings, load_settings
from mlcore.db import PredictionLog
from mlcore.db.prediction_row import FIELDS, PredictionRow, from_json_line, insert_values, new_row, to_json_line
from mlcore.errors import ConfigurationError, DataValidationError, ManifestError, NotFoundError
from mlcore.model_version import ModelCard, read_card, version_uri
from mlcore.storage import open_storage, publish_directory
from mlcore.timeutil import parse_duration

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "DB_HOST", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))


# --- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["postgresql+psycopg2", "postgres+psycopg2"])
def test_psycopg2_urls_use_the_installed_driver_and_say_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, driver: str
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setattr("mlcore.config._installed", lambda module: False)
    monkeypatch.setenv("DATABASE_URL", f"{driver}://u:good-pw@db:5433/mlp")
    with caplog.at_level(logging.INFO, logger="mlcore.config"):
        url = load_settings().sqlalchemy_url
    assert url.drivername == "postgresql+psycopg" and url.port == 5433 and url.database == "mlp"
    assert any(driver in r.getMessage() and "postgresql+psycopg" in r.getMessage() for r in caplog.records)
    from mlcore.db import create_db_engine

    create_db_engine(url.render_as_string(hide_password=False)).dispose()  # no ModuleNotFoundError: psycopg2


class _Component(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLPTEST_", extra="ignore")

    port: int = Field(1, ge=1)
    api_token: SecretStr | None = None
    hook_url: str | None = None


def test_one_error_format_names_the_variable_and_never_echoes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPTEST_PORT", "0")
    monkeypatch.setenv("MLPTEST_API_TOKEN", "x" * 3)
    with pytest.raises(ConfigurationError) as caught:
        load_component_settings(_Component, "test settings", api_token=["not", "a", "string-secret-value"])
    message = str(caught.value)
    assert message.startswith("invalid test settings: ")
    assert "MLPTEST_PORT (port): " in message and "(got '0')" in message
    assert "MLPTEST_API_TOKEN (api_token)" in message and "string-secret-value" not in message


def test_database_url_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(database_url=["postgresql://u:very-secret@h/db"])
    assert "DATABASE_URL" in str(caught.value) and "very-secret" not in str(caught.value)


# --- the model version ---------------------------------------------------------------------------------------


def test_a_card_reads_back_as_written_and_offers_typed_views() -> None:
    raw = {
        "name": "s",
        "version": 3,
        "labels": {"1": "Positive", "0": "Negative"},
        "truncation": {"strategy": "head+tail", "head_fraction": 0.25},
        "runtimes": {"onnx": {"file": "model.onnx", "accuracy": 0.9, "check_rows": 8}},
        "something_new": {"kept": True},
    }
    card = ModelCard.model_validate(raw)
    assert card.version == "3" and card.label_names() == ["negative", "positive"] and card.head_fraction == 0.25
    assert card.runtime_file("onnx") == "model.onnx" and card.runtime_file("onnx-int8") is None
    again = ModelCard.parse(card.to_json(), "card")
    assert again == card and again.model_dump(exclude_unset=True)["something_new"] == {"kept": True}
    with pytest.raises(DataValidationError, match="not valid JSON"):
        ModelCard.parse("{", "where")


def test_card_reads_are_checked_against_the_manifest(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "store"))
    version = tmp_path / "v"
    version.mkdir()
    (version / "model_card.json").write_text(ModelCard(name="s", max_length=64).to_json())
    publish_directory(storage, "models/s/1", version)
    assert read_card(storage, "models/s/1").max_length == 64
    storage.put_bytes("models/s/1/model_card.json", b'{"name": "tampered"}')
    with pytest.raises(ManifestError, match="checksum"):
        read_card(storage, "models/s/1")
    with pytest.raises(NotFoundError):
        storage.get_bytes("models/s/2/model_card.json")
    assert version_uri("s3://b/base", "s", "1") == "s3://b/base/models/s/1"


# --- the prediction row --------------------------------------------------------------------------------------


def test_the_row_type_has_the_tables_columns() -> None:
    columns = {c.name for c in PredictionLog.__table__.columns} - {"logged_at"}
    assert set(FIELDS) == columns == set(typing.get_type_hints(PredictionRow))


def test_a_row_becomes_insert_values_and_a_spill_line() -> None:
    row = new_row(
        "good film",
        str(uuid.uuid4()),
        model_name="m",
        model_version="1",
        deployment_id=None,
        role="stable",
        latency_ms=1.5,
        request_id=None,
    )
    values = insert_values(row)
    assert set(values) == set(FIELDS) and values["mirrored_request_id"] is None
    assert len(row["input_hash"]) == 64 and from_json_line(to_json_line(row)) == row


# --- time ----------------------------------------------------------------------------------------------------


def test_one_duration_grammar() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("0s", allow_zero=True) == timedelta(0)
    for bad in ("", "7", "h", "0h", "-1h", "5y", "1h 30m"):
        with pytest.raises(ConfigurationError):
            parse_duration(bad)
