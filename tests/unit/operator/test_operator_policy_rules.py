"""The operator's policy as pure functions: allow-lists, the hardened predictor, the canary readiness deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlcore.errors import DataValidationError
from mlpipeline_operator import policy
from mlpipeline_operator.config import OperatorConfig, load_config
from mlpipeline_operator.render import Defaults
from mlpipeline_operator.spec import parse_spec
from mlpipeline_operator.state import Canary, RolloutState

pytestmark = pytest.mark.unit

MODEL = {"name": "sentiment", "version": "1", "storageUri": "s3://models/sentiment/1"}
DEFAULTS = Defaults(predictor_image="ghcr.io/ml-pipeline/predictor:1", database_secret="mlp-db")


def config(**values: object) -> OperatorConfig:
    return OperatorConfig(standalone=True, **values)  # type: ignore[arg-type]


def test_defaults_always_pass_and_nothing_else_by_default() -> None:
    assert policy.problems(parse_spec({"model": MODEL}), config(), DEFAULTS) == []
    own = parse_spec(
        {"model": MODEL, "predictor": {"image": DEFAULTS.predictor_image}, "databaseSecretRef": {"name": "mlp-db"}}
    )
    assert policy.problems(own, config(), DEFAULTS) == []
    other = parse_spec(
        {"model": MODEL, "predictor": {"image": "x/y:1", "serviceAccountName": "sa"}, "storageSecretRef": {"name": "s"}}
    )
    with pytest.raises(DataValidationError, match=r"image 'x/y:1'.*serviceAccountName 'sa'.*storageSecretRef 's'"):
        policy.check(other, config(), DEFAULTS)


def test_globs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_OPERATOR_ALLOWED_IMAGES", "registry.example/ml/*, ghcr.io/acme/predictor:*")
    monkeypatch.setenv("MLP_OPERATOR_ALLOWED_SECRETS", "team-*")
    loaded = load_config(standalone=True)
    assert loaded.allowed_images == ["registry.example/ml/*", "ghcr.io/acme/predictor:*"]
    spec = parse_spec(
        {"model": MODEL, "predictor": {"image": "registry.example/ml/p:3"}, "databaseSecretRef": {"name": "team-db"}}
    )
    assert policy.problems(spec, loaded, DEFAULTS) == []
    assert loaded.verify_models  # on by default


def test_harden_sets_the_restricted_contexts() -> None:
    predictor = {"containers": [{"name": "kserve-container", "image": "i"}]}
    policy.harden(predictor)
    assert predictor["securityContext"]["runAsNonRoot"] is True  # type: ignore[index]
    (container,) = predictor["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # type: ignore[index]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, {"name": "cache", "mountPath": "/cache"}]


def test_canary_deadline() -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    canary = Canary("2", "s3://m/2", "g2-v2", 10, 0, started, started)
    state = RolloutState(canary=canary)
    assert policy.canary_overdue(state, config(canary_ready_deadline_s=60), started + timedelta(seconds=59)) is None
    late = policy.canary_overdue(state, config(canary_ready_deadline_s=60), started + timedelta(seconds=61))
    assert late is not None and "not Ready 61s" in late
    assert policy.canary_overdue(state, config(canary_ready_deadline_s=0), started + timedelta(days=1)) is None
