"""Settings and command line: flags over PREDICTOR_* variables, the operator's identity variables, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.errors import ConfigurationError
from predictor.__main__ import parse_args
from predictor.settings import PredictorSettings, load_predictor_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEPLOYMENT_ID", "DEPLOYMENT_ROLE", "MODEL_VERSION"):
        monkeypatch.delenv(name, raising=False)


def test_identity_comes_from_the_operator_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYMENT_ID", "team-a/sentiment")
    monkeypatch.setenv("DEPLOYMENT_ROLE", "canary")
    monkeypatch.setenv("MODEL_VERSION", "12")
    settings = load_predictor_settings(model_dir="/mnt/models")
    assert (settings.deployment_id, settings.deployment_role, settings.model_version) == (
        "team-a/sentiment",
        "canary",
        "12",
    )


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTOR_MAX_BATCH_SIZE", "8")
    settings = load_predictor_settings(storage_uri="s3://models/sentiment/1")
    assert settings.deployment_role == "stable" and settings.deployment_id is None
    assert settings.max_batch_size == 8 and settings.max_text_chars == 5000 and settings.log_predictions


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTOR_MAX_WAIT_MS", "50")
    args = parse_args(
        ["--model_name", "imdb", "--model_dir", "/mnt/models", "--max_wait_ms", "2", "--optimize", "int8",
         "--no-log-predictions", "--http_port", "9000", "--runtime", "torch"]
    )  # fmt: skip
    settings = load_predictor_settings(**vars(args))
    assert settings.model_name == "imdb" and settings.max_wait_ms == 2 and settings.optimize == "int8"
    assert settings.runtime == "torch"
    assert settings.log_predictions is False and settings.http_port == 9000


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({}, {}, "exactly one of storage_uri"),
        ({"model_dir": "/m", "storage_uri": "s3://b/m/1"}, {}, "exactly one of storage_uri"),
        ({"model_dir": "/m"}, {"DEPLOYMENT_ROLE": "blue"}, "DEPLOYMENT_ROLE"),
        ({"model_dir": "/m", "max_batch_size": 0}, {}, "max_batch_size"),
        ({"model_dir": "/m", "optimize": "fp4"}, {}, "optimize"),
        ({"model_dir": "/m"}, {"PREDICTOR_RUNTIME": "tensorrt"}, "runtime"),
    ],
)
def test_bad_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        load_predictor_settings(**overrides)
    assert message in str(caught.value)


def test_the_runtime_defaults_to_auto_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_predictor_settings(model_dir="/m").runtime == "auto"
    monkeypatch.setenv("PREDICTOR_RUNTIME", "onnx-int8")
    assert load_predictor_settings(model_dir="/m").runtime == "onnx-int8"
    with pytest.raises(SystemExit):
        parse_args(["--model_dir", "/m", "--runtime", "tensorrt"])


def test_storage_uri_and_model_dir_flags_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--storage_uri", "s3://b/x/1", "--model_dir", "/mnt/models"])


def test_the_feedback_token_comes_from_its_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a-long-enough-token-value\n")
    settings = PredictorSettings(model_dir=tmp_path, feedback_token_file=token_file)
    assert settings.effective_feedback_token() == "a-long-enough-token-value"
    token_file.write_text("short")
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        settings.effective_feedback_token()
    assert PredictorSettings(model_dir=tmp_path).effective_feedback_token() is None


def test_feedback_access_rules() -> None:
    from predictor.feedback import FeedbackAccess

    guarded = FeedbackAccess("s3cret-token-value", open_without_token=False)
    assert guarded.refusal("Bearer s3cret-token-value") is None
    assert guarded.refusal(None) == (401, "feedback needs the header Authorization: Bearer <feedback token>")
    assert guarded.refusal("Basic s3cret-token-value") is not None
    assert FeedbackAccess(None, open_without_token=True).refusal(None) is None  # the embedded default
    status, message = FeedbackAccess(None, open_without_token=False).refusal("Bearer x") or (0, "")
    assert status == 403 and "PREDICTOR_FEEDBACK_TOKEN_FILE" in message


def test_an_operator_run_predictor_refuses_to_log_into_sqlite(tmp_path: Path) -> None:
    settings = PredictorSettings(model_dir=tmp_path, deployment_id="ns/name")
    with pytest.raises(ConfigurationError, match="DEPLOYMENT_ID='ns/name' is set but the database is the embedded"):
        settings.check_database(uses_postgres=False)
    settings.check_database(uses_postgres=True)
    PredictorSettings(model_dir=tmp_path).check_database(uses_postgres=False)  # a laptop: fine
    PredictorSettings(model_dir=tmp_path, deployment_id="ns/n", log_predictions=False).check_database(False)
    PredictorSettings(model_dir=tmp_path, deployment_id="ns/n", allow_embedded_db=True).check_database(False)
