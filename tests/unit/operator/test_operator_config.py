"""Operator settings from the environment, and a clear refusal of bad ones."""

import subprocess
import sys

import pytest

from mlcore.errors import ConfigurationError
from mlpipeline_operator.app import build_settings
from mlpipeline_operator.config import load_config

pytestmark = pytest.mark.unit


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("MLP_OPERATOR_NAMESPACES", "ml, staging")
    monkeypatch.setenv("MLP_OPERATOR_TICK_SECONDS", "2.5")
    monkeypatch.setenv("MLP_OPERATOR_DATABASE_SECRET", "mlp-db")
    config = load_config()
    assert config.namespaces == ["ml", "staging"]
    assert config.tick_seconds == 2.5 and config.database_secret == "mlp-db"
    settings = build_settings(config)
    assert settings.persistence.finalizer == "mlpipeline.io/finalizer"
    assert settings.peering.name == "mlpipeline-operator" and not settings.peering.standalone
    assert settings.scanning.disabled  # exact namespaces: a namespaced Role suffices
    assert not build_settings(load_config(namespaces="")).scanning.disabled  # cluster-wide: CRDs are watched


def test_bad_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("MLP_OPERATOR_TICK_SECONDS", "0")
    with pytest.raises(ConfigurationError, match="MLP_OPERATOR_TICK_SECONDS"):
        load_config()


def test_module_entry_point_refuses_bad_settings():
    env = {"MLP_OPERATOR_LIVENESS_ENDPOINT": "ftp://nope", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "MLP_OPERATOR_LIVENESS_ENDPOINT" in result.stderr
