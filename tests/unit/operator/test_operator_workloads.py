"""Reading KServe's predictor Deployment: which version its pods are made with, and whether it has rolled out."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.workloads import predictor_deployment_name, rollout_problem, serves, template_version


def deployment(version: str | None = "2", *, generation: int = 3, **status: Any) -> dict[str, Any]:
    env = [{"name": "DEPLOYMENT_ROLE", "value": "stable"}]
    if version is not None:
        env.append({"name": "MODEL_VERSION", "value": version})
    done = {"observedGeneration": generation, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    return {
        "metadata": {"name": "sentiment-predictor", "generation": generation},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "queue-proxy", "env": [{"name": "MODEL_VERSION", "value": "sidecar"}]},
                        {"name": "kserve-container", "env": env},
                    ]
                }
            },
        },
        "status": {**done, **status},
    }


def test_the_name_is_kserves_raw_predictor_deployment() -> None:
    assert predictor_deployment_name("sentiment-canary") == "sentiment-canary-predictor"


def test_the_version_comes_from_the_predictor_container_only() -> None:
    assert template_version(deployment("7")) == "7"
    assert template_version(deployment(None)) is None
    assert template_version({}) is None


def test_a_rolled_out_deployment_serves_its_version() -> None:
    assert rollout_problem(deployment()) is None
    assert serves(deployment("2"), "2") == (True, "version 2 rolled out")


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ({"observedGeneration": 2}, "Deployment generation 3 not yet observed"),
        ({"updatedReplicas": 1}, "1 of 2 replicas updated"),
        ({"replicas": 3}, "1 old replica(s) still running"),
        ({"availableReplicas": 1}, "1 of 2 updated replicas available"),
        (
            {"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]},
            "rollout stuck: too slow",
        ),
    ],
)
def test_a_rollout_in_progress_is_not_done(status: dict[str, Any], problem: str) -> None:
    assert rollout_problem(deployment(**status)) == problem
    ready, why = serves(deployment(**status), "2")
    assert not ready and why == f"version 2 rolling out: {problem}"


def test_an_old_template_or_no_deployment_does_not_serve_the_new_version() -> None:
    assert serves(deployment("1"), "2") == (False, "predictor Deployment still made with version 1, waiting for 2")
    assert serves(None, "2") == (False, "KServe's predictor Deployment not found yet")


def test_zero_replicas_wanted_is_rolled_out_once_observed() -> None:
    body = deployment(replicas=0, updatedReplicas=0, availableReplicas=0)
    body["spec"]["replicas"] = 0
    assert rollout_problem(body) is None
