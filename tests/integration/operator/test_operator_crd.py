"""The ModelDeployment CRD on the real API server: it installs, refuses bad specs at admission, fills defaults."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

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


def test_kubectl_explain_documents_fields(cluster: Cluster, kube_apiserver) -> None:
    out = kube_apiserver.kubectl("explain", "modeldeployments.spec.rollout.steps").stdout
    assert "strictly increasing and ending at 100" in out
    out = kube_apiserver.kubectl("explain", "md.spec.rollout.analysis.maxLabelShift").stdout
    assert "Jensen-Shannon" in out
