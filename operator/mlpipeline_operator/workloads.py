"""Whether KServe's predictor Deployment runs a model version on every replica.

KServe (v0.20, Standard mode) reports an InferenceService Ready from its Deployment's Available condition, and that
stays True through a rolling update while the old pod still answers. So after a change of model, Ready alone does
not say which version serves; found on a real node, where a promotion was declared done (and the canary removed)
while the stable pod still ran the old version. A rollout therefore ends only when the Deployment KServe made for
the InferenceService carries the version in its pod template and has rolled that template out (the test of
`kubectl rollout status`).
"""

from __future__ import annotations

from typing import Any

PREDICTOR_CONTAINER = "kserve-container"
VERSION_ENV = "MODEL_VERSION"


def predictor_deployment_name(inference_service: str) -> str:
    """The Deployment KServe's raw reconciler creates for an InferenceService's predictor."""
    return f"{inference_service}-predictor"


def template_version(deployment: dict[str, Any]) -> str | None:
    """The model version the Deployment's pods are made with (the operator's MODEL_VERSION variable)."""
    pod = (((deployment.get("spec") or {}).get("template") or {}).get("spec")) or {}
    for container in pod.get("containers") or []:
        if container.get("name") == PREDICTOR_CONTAINER:
            for env in container.get("env") or []:
                if env.get("name") == VERSION_ENV:
                    return str(env.get("value", ""))
    return None


def rollout_problem(deployment: dict[str, Any]) -> str | None:
    """None when every replica runs the Deployment's current template and is available; else what is pending."""
    metadata, spec, status = (
        deployment.get("metadata") or {},
        deployment.get("spec") or {},
        deployment.get("status") or {},
    )
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return f"Deployment generation {generation} not yet observed"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return f"rollout stuck: {condition.get('message') or 'progress deadline exceeded'}"
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    if updated < wanted:
        return f"{updated} of {wanted} replicas updated"
    total = int(status.get("replicas") or 0)
    if total > updated:
        return f"{total - updated} old replica(s) still running"
    available = int(status.get("availableReplicas") or 0)
    if available < updated:
        return f"{available} of {updated} updated replicas available"
    return None


def serves(deployment: dict[str, Any] | None, version: str) -> tuple[bool, str]:
    """(True, ...) when the predictor Deployment has rolled out `version`; else (False, why not)."""
    if deployment is None:
        return False, "KServe's predictor Deployment not found yet"
    made_with = template_version(deployment)
    if made_with != version:
        return False, f"predictor Deployment still made with version {made_with}, waiting for {version}"
    problem = rollout_problem(deployment)
    if problem is not None:
        return False, f"version {version} rolling out: {problem}"
    return True, f"version {version} rolled out"
