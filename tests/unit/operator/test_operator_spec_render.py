"""Spec parsing and InferenceService rendering (pure, no cluster)."""

from datetime import timedelta

import pytest

from mlcore.errors import DataValidationError
from mlpipeline_operator.durations import parse_duration
from mlpipeline_operator.render import Defaults, Owner, ServedModel, is_ready, render
from mlpipeline_operator.spec import parse_spec

pytestmark = pytest.mark.unit

OWNER = Owner("ml", "sentiment", "uid-1")
MODEL = {"name": "sentiment", "version": "1", "storageUri": "s3://models/sentiment/1"}


def env_of(container):
    return {e["name"]: e["value"] for e in container["env"]}


def test_defaults_match_the_crd():
    spec = parse_spec({"model": MODEL})
    assert spec.deployment_mode == "RawDeployment"
    assert spec.rollout.strategy == "Canary"
    assert spec.rollout.steps == (10, 25, 50, 100)
    assert spec.rollout.interval_delta == timedelta(minutes=1)
    assert spec.rollout.analysis.window_delta == timedelta(minutes=5)
    assert spec.rollout.max_failed_checks == 3
    assert spec.predictor.min_replicas == 1 and spec.predictor.max_replicas == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rollout": {"steps": [10, 10, 100]}}, "strictly increasing"),
        ({"rollout": {"steps": [10, 50]}}, "must end at 100"),
        ({"rollout": {"interval": "soon"}}, "not a duration"),
        ({"predictor": {"minReplicas": 3, "maxReplicas": 2}}, "must not exceed"),
        ({"predictor": {"runtime": "r", "image": "i"}}, "not both"),
        ({"predictor": {"env": [{"name": "DEPLOYMENT_ROLE", "value": "x"}]}}, "operator sets them"),
        ({"model": {**MODEL, "storageUri": "ftp://x"}}, "must start with s3://"),
        ({"rollout": {"analysis": {"maxErrorRate": 1.5}}}, "maxErrorRate"),
    ],
)
def test_invalid_specs_name_the_field(patch, message):
    with pytest.raises(DataValidationError, match=message):
        parse_spec({"model": MODEL, **patch})


def test_durations():
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("45s") == timedelta(seconds=45)
    with pytest.raises(DataValidationError):
        parse_duration("")


def test_raw_deployment_stable_only():
    spec = parse_spec({"model": MODEL, "databaseSecretRef": {"name": "db"}})
    desired = render(OWNER, spec, ServedModel("1", MODEL["storageUri"]), defaults=Defaults(storage_secret="s3"))
    assert list(desired.inference_services) == ["sentiment"] and desired.route is None
    isvc = desired.inference_services["sentiment"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert isvc["metadata"]["labels"]["mlpipeline.io/role"] == "stable"
    container = isvc["spec"]["predictor"]["containers"][0]
    assert env_of(container) | {} == {
        "DEPLOYMENT_ID": "ml/sentiment",
        "DEPLOYMENT_ROLE": "stable",
        "MODEL_VERSION": "1",
        "PREDICTOR_MODEL_NAME": "sentiment",
        "PREDICTOR_STORAGE_URI": "s3://models/sentiment/1",
    }
    assert container["envFrom"] == [{"secretRef": {"name": "db"}}, {"secretRef": {"name": "s3"}}]
    # The image's default CMD names --model_dir; the predictor refuses it together with PREDICTOR_STORAGE_URI.
    assert container["args"] == ["--model_name", "sentiment"]


def test_raw_deployment_canary_is_a_second_service_with_a_weighted_route():
    spec = parse_spec({"model": MODEL, "routing": {"parentRef": {"name": "gw"}}})
    desired = render(OWNER, spec, ServedModel("1", "s3://m/1"), ServedModel("2", "s3://m/2"), weight=25)
    canary = desired.inference_services["sentiment-canary"]
    assert env_of(canary["spec"]["predictor"]["containers"][0])["DEPLOYMENT_ROLE"] == "canary"
    assert env_of(canary["spec"]["predictor"]["containers"][0])["MODEL_VERSION"] == "2"
    backends = desired.route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [
        ("sentiment-predictor", 75),
        ("sentiment-canary-predictor", 25),
    ]


def test_serverless_canary_uses_canary_traffic_percent_and_a_runtime():
    spec = parse_spec({"model": MODEL, "deploymentMode": "Serverless", "predictor": {"runtime": "hf"}})
    desired = render(OWNER, spec, ServedModel("1", "s3://m/1"), ServedModel("2", "s3://m/2"), weight=10)
    assert list(desired.inference_services) == ["sentiment"]
    predictor = desired.inference_services["sentiment"]["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == "s3://m/2"
    assert predictor["model"]["runtime"] == "hf"
    assert env_of(predictor["model"])["DEPLOYMENT_ROLE"] == "canary"


def test_readiness_follows_the_ready_condition_and_generation():
    isvc = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": []}}
    assert is_ready(None)[0] is False
    assert is_ready(isvc) == (False, "InferenceService generation 2 not yet observed (at 1)")
    isvc["status"] = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
    assert is_ready(isvc)[0] is True
