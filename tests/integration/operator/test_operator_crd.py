"""The ModelDeployment CRD on the real API server: it installs, refuses bad specs at admission, fills defaults."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from mlcore.errors import DataValidationError
from mlpipeline_operator.spec import parse_spec
from tests.fixtures.operator_harness import Cluster, model_deployment

pytestmark = pytest.mark.k8s

ROUTE = {"parentRef": {"name": "gateway"}}
AB = {"strategy": "ABTest", "abTest": {"stickiness": {"header": "x-user-id"}}}
INVALID = [
    ("steps-not-increasing", {"rollout": {"steps": [10, 50, 25, 100]}}, "rollout.steps must be strictly increasing"),
    ("steps-duplicate", {"rollout": {"steps": [10, 10, 100]}}, "rollout.steps must be strictly increasing"),
    ("steps-not-ending-at-100", {"rollout": {"steps": [10, 50]}}, "rollout.steps must end at 100"),
    ("step-out-of-range", {"rollout": {"steps": [0, 100]}}, "every step is a traffic percent between 1 and 100"),
    ("error-rate", {"rollout": {"analysis": {"maxErrorRate": 5}}}, "maxErrorRate is a fraction between 0 and 1"),
    ("label-shift", {"rollout": {"analysis": {"maxLabelShift": -0.1}}}, "maxLabelShift is a Jensen-Shannon"),
    ("confidence", {"rollout": {"analysis": {"minMeanConfidence": 2}}}, "minMeanConfidence is a probability"),
    ("latency", {"rollout": {"analysis": {"maxLatencyP95Ms": 0}}}, "maxLatencyP95Ms must be above 0"),
    ("interval", {"rollout": {"interval": "soon"}}, "rollout.interval must be a duration of at least 1s"),
    (
        "replicas",
        {"predictor": {"minReplicas": 4, "maxReplicas": 2}},
        "predictor.minReplicas must not exceed predictor.maxReplicas",
    ),
    ("runtime-and-image", {"predictor": {"runtime": "hf", "image": "x"}}, "set either runtime"),
    ("reserved-env", {"predictor": {"env": [{"name": "DEPLOYMENT_ROLE", "value": "x"}]}}, "must not set DEPLOYMENT_ID"),
    ("mode", {"deploymentMode": "Magic"}, 'Unsupported value: "Magic"'),
    ("failed-checks", {"rollout": {"maxFailedChecks": 0}}, "maxFailedChecks must be between 1 and 100"),
    ("significance", {"rollout": {"analysis": {"significance": 0.9}}}, "significance must be above 0 and at most 0.5"),
    ("latency-ratio", {"rollout": {"analysis": {"maxLatencyRatio": 0.8}}}, "maxLatencyRatio must be between 1 and"),
    ("label-test", {"rollout": {"analysis": {"labelTest": "KS"}}}, 'Unsupported value: "KS"'),
    (
        "ab-weights",
        {"routing": ROUTE, "rollout": {**AB, "abTest": {**AB["abTest"], "weights": {"stable": 70, "candidate": 40}}}},
        "rollout.abTest.weights must sum to 100",
    ),
    ("ab-no-stickiness", {"routing": ROUTE, "rollout": {"strategy": "ABTest"}}, "needs rollout.abTest.stickiness"),
    (
        "ab-two-keys",
        {"routing": ROUTE, "rollout": {"strategy": "ABTest", "abTest": {"stickiness": {"header": "a", "cookie": "b"}}}},
        "name exactly one of header or cookie",
    ),
    ("ab-no-route", {"rollout": AB}, "ABTest splits the traffic with a Gateway API HTTPRoute"),
    (
        "ab-serverless",
        {"deploymentMode": "Serverless", "routing": ROUTE, "rollout": AB},
        "need deploymentMode RawDeployment",
    ),
    (
        "mirror-percent",
        {"rollout": {"strategy": "Shadow", "shadow": {"mirrorPercent": 120}}},
        "mirrorPercent must be above 0",
    ),
    (
        "mirror-zero",
        {"rollout": {"strategy": "Shadow", "shadow": {"mirrorPercent": 0}}},
        "mirrorPercent must be above 0",
    ),
    (
        "gateway-mirror-no-route",
        {"rollout": {"strategy": "Shadow", "shadow": {"mirrorBy": "Gateway"}}},
        "RequestMirror filter: set routing.parentRef",
    ),
    # spec.retraining: what a candidate's rollout, or its training Job, would otherwise meet only at run time.
    (
        "retrain-ab-no-stickiness",
        {"routing": ROUTE, "retraining": {"rollout": "ABTest"}},
        "retraining.rollout ABTest needs rollout.abTest.stickiness",
    ),
    (
        "retrain-ab-no-route",
        {"rollout": {"abTest": AB["abTest"]}, "retraining": {"rollout": "ABTest"}},
        "retraining.rollout ABTest splits the traffic with a Gateway API HTTPRoute: set routing.parentRef",
    ),
    (
        "retrain-shadow-serverless",
        {"deploymentMode": "Serverless", "retraining": {"rollout": "Shadow"}},
        "retraining.rollout Shadow needs deploymentMode RawDeployment (the candidate runs as its own "
        "InferenceService), not Serverless",
    ),
    (
        "retrain-ab-serverless",
        {
            "deploymentMode": "Serverless",
            "routing": ROUTE,
            "rollout": {"abTest": AB["abTest"]},
            "retraining": {"rollout": "ABTest"},
        },
        "retraining.rollout ABTest needs deploymentMode RawDeployment",
    ),
    (
        "retrain-shadow-gateway-no-route",
        {"rollout": {"shadow": {"mirrorBy": "Gateway"}}, "retraining": {"rollout": "Shadow"}},
        "retraining.rollout Shadow with rollout.shadow.mirrorBy Gateway mirrors with the HTTPRoute's RequestMirror",
    ),
    (
        "retrain-schedule",
        {"retraining": {"schedule": "weekly"}},
        'retraining.schedule must be a duration of at least 1s such as 24h or 168h (got "weekly")',
    ),
    ("retrain-cooldown", {"retraining": {"cooldown": "0s"}}, "retraining.cooldown must be a duration of at least 1s"),
    (
        "retrain-timeout",
        {"retraining": {"job": {"timeout": "2 hours"}}},
        'retraining.job.timeout must be a duration of at least 1s such as 30m or 2h (got "2 hours")',
    ),
    (
        "retrain-service-account",
        {"retraining": {"job": {"serviceAccountName": "Trainer_SA"}}},
        "retraining.job.serviceAccountName must be a ServiceAccount name: lowercase letters, digits, - and . "
        '(got "Trainer_SA")',
    ),
    (
        "retrain-env-name",
        {"retraining": {"job": {"env": [{"name": "1ST", "value": "x"}]}}},
        "retraining.job.env[].name must be a valid variable name (letters, digits, _, not starting with a digit; "
        'got "1ST")',
    ),
    (
        "retrain-resources",
        {
            "retraining": {
                "job": {"resources": {"requests": {"cpu": "two", "memory": "4Gi"}, "limits": {"memory": "8 GB"}}}
            }
        },
        'retraining.job.resources.requests: each value must be a quantity such as 2, 500m or 4Gi (got "two")',
    ),
    ("retrain-attempts", {"retraining": {"maxAttempts": 0}}, "spec.retraining.maxAttempts: Invalid value: 0"),
    ("retrain-kind", {"retraining": {"onAlerts": {"kinds": ["latency"]}}}, 'Unsupported value: "latency"'),
]


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_are_refused_with_a_clear_message(cluster: Cluster, case: str, spec: dict, message: str) -> None:
    with pytest.raises(ApiException) as refused:
        cluster.create(model_deployment(f"bad-{case}", "1", **spec))
    assert refused.value.status == 422
    said = json.loads(refused.value.body)["message"]
    assert message in said, said


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [("s3://b/m/1", True), ("gs://b/m", True), ("pvc://claim/m", True), ("file:///m", True), ("ftp://x/m", False)],
)
def test_storage_uri_scheme(cluster: Cluster, uri: str, accepted: bool) -> None:
    body = model_deployment("uri", "1")
    body["spec"]["model"]["storageUri"] = uri
    if accepted:
        cluster.create(body)
        return
    with pytest.raises(ApiException) as refused:
        cluster.create(body)
    said = json.loads(refused.value.body)["message"]
    assert "model.storageUri must start with s3://, gs://, pvc://, file://" in said
    assert '(got "ftp://x/m")' in said


def test_version_must_be_a_string(cluster: Cluster) -> None:
    body = model_deployment("int-version", "1")
    body["spec"]["model"]["version"] = 2
    with pytest.raises(ApiException) as refused:
        cluster.create(body)
    said = json.loads(refused.value.body)["message"]
    assert "spec.model.version" in said and "string" in said


def test_valid_spec_gets_every_default(cluster: Cluster) -> None:
    created = cluster.create(model_deployment("defaults", "1"))
    spec = created["spec"]
    assert spec["deploymentMode"] == "RawDeployment"
    assert spec["predictor"] == {
        "modelFormat": "huggingface",
        "minReplicas": 1,
        "maxReplicas": 1,
        "env": [],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }
    assert spec["rollout"] == {
        "strategy": "Canary",
        "steps": [10, 25, 50, 100],
        "interval": "1m",
        "maxFailedChecks": 3,
        "autoPromote": True,
        "analysis": {
            "window": "5m",
            "minRequests": 50,
            "maxErrorRate": 0.05,
            "maxLatencyP95Ms": 1000,
            "maxLabelShift": 0.1,
            "minMeanConfidence": 0,
            "significance": 0.05,
            "maxLatencyRatio": 1.2,
            "labelTest": "G",
        },
        "abTest": {"weights": {"stable": 50, "candidate": 50}, "minSamples": 500, "maxDuration": "168h"},
        "shadow": {
            "mirrorPercent": 100,
            "mirrorBy": "Predictor",
            "minAgreement": 0.9,
            "maxConfidenceDelta": 1,
            "onFailure": "RollBack",
        },
    }


def test_valid_retraining_specs_are_accepted(cluster: Cluster) -> None:
    """What the rules above refuse, made right: each is accepted (the rules are not stricter than the operator)."""
    job = {
        "serviceAccountName": "trainer.ml-pipeline",
        "env": [{"name": "HF_HOME", "value": "/tmp/hf"}],
        "resources": {"requests": {"cpu": 2, "memory": "4Gi"}, "limits": {"cpu": "2500m", "memory": "8Gi"}},
        "timeout": "1h30m",
    }
    specs = {
        "ab": {"routing": ROUTE, "rollout": {"abTest": AB["abTest"]}, "retraining": {"rollout": "ABTest", "job": job}},
        "shadow-gw": {
            "routing": ROUTE,
            "rollout": {"shadow": {"mirrorBy": "Gateway"}},
            "retraining": {"rollout": "Shadow", "schedule": "168h", "cooldown": "30m"},
        },
        "serverless-canary": {"deploymentMode": "Serverless", "retraining": {"rollout": "Canary"}},
        "serverless-none": {"deploymentMode": "Serverless", "retraining": {"rollout": "None"}},
    }
    for name, spec in specs.items():
        created = cluster.create(model_deployment(f"ok-{name}", "1", **spec))
        parse_spec(created["spec"])  # and the operator's own checks agree


# The rules the operator checks itself too; the others (names, quantities) only the API server can hold objects to.
SECOND_LINE = {
    "retrain-ab-no-stickiness",
    "retrain-ab-no-route",
    "retrain-shadow-serverless",
    "retrain-ab-serverless",
    "retrain-shadow-gateway-no-route",
    "retrain-schedule",
    "retrain-cooldown",
    "retrain-timeout",
    "retrain-env-name",
    "retrain-attempts",
    "retrain-kind",
}


@pytest.mark.parametrize("case", sorted(SECOND_LINE))
def test_the_operator_refuses_them_too(case: str) -> None:
    """The pydantic checks stay the second line, for objects stored before a rule existed."""
    spec = next(spec for name, spec, _ in INVALID if name == case)
    with pytest.raises(DataValidationError, match=r"invalid ModelDeployment spec: spec\.\S*"):
        parse_spec(model_deployment("x", "1", **spec)["spec"])


def test_kubectl_explain_documents_fields(cluster: Cluster, kube_apiserver) -> None:
    out = kube_apiserver.kubectl("explain", "modeldeployments.spec.rollout.steps").stdout
    assert "strictly increasing and ending at 100" in out
    out = kube_apiserver.kubectl("explain", "md.spec.rollout.analysis.maxLabelShift").stdout
    assert "Jensen-Shannon" in out
