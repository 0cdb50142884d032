"""Render the children of a ModelDeployment: InferenceServices (and a weighted HTTPRoute) as plain dicts.

KServe v1beta1 has no canary list: canaryTrafficPercent (a Knative revision split) works only in Serverless mode.
So in RawDeployment mode the canary is a second InferenceService `<name>-canary`, and the traffic split is a
Gateway API HTTPRoute over the two predictor Services when spec.routing.parentRef names a Gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlpipeline_operator import (
    GROUP,
    ISVC_GROUP,
    ISVC_VERSION,
    KIND,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGER,
    ROUTE_GROUP,
    ROUTE_VERSION,
    VERSION,
    policy,
)
from mlpipeline_operator.spec import ModelDeploymentSpec

Role = Literal["stable", "canary", "shadow"]
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


@dataclass(frozen=True)
class Owner:
    namespace: str
    name: str
    uid: str

    @property
    def deployment_id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServedModel:
    """One model version in one role."""

    version: str
    storage_uri: str


@dataclass(frozen=True)
class Defaults:
    """Operator-wide settings used where the spec says nothing."""

    predictor_image: str = "ghcr.io/ml-pipeline/predictor:latest"
    database_secret: str | None = None
    storage_secret: str | None = None


@dataclass(frozen=True)
class Desired:
    """Everything the operator wants to exist for one ModelDeployment."""

    inference_services: dict[str, dict[str, Any]]
    route: dict[str, Any] | None


def canary_name(name: str) -> str:
    return f"{name}-canary"


def shadow_name(name: str) -> str:
    return f"{name}-shadow"


def candidate_name(name: str, strategy: str) -> str:
    """The candidate's InferenceService: <name>-shadow for a shadow (it serves no client), else <name>-canary."""
    return shadow_name(name) if strategy == "Shadow" else canary_name(name)


def mirror_url(owner: Owner, model_name: str) -> str:
    """The shadow predictor's v1 endpoint, through its KServe RawDeployment Service (<isvc>-predictor, port 80)."""
    service = f"{shadow_name(owner.name)}-predictor"
    return f"http://{service}.{owner.namespace}.svc.cluster.local/v1/models/{model_name}:predict"


def render(
    owner: Owner,
    spec: ModelDeploymentSpec,
    stable: ServedModel,
    canary: ServedModel | None = None,
    weight: int = 0,
    defaults: Defaults | None = None,
    strategy: str = "Canary",
) -> Desired:
    """The children for a stable model and an optional candidate at `weight` percent, run under `strategy`."""
    defaults = defaults or Defaults()
    services: dict[str, dict[str, Any]] = {}
    if spec.deployment_mode == "Serverless":
        # One predictor; the canary is Knative's newest revision and carries role=canary in its environment.
        if canary is not None:
            predictor = _predictor(owner, spec, canary, "canary", defaults)
            predictor["canaryTrafficPercent"] = weight
        else:
            predictor = _predictor(owner, spec, stable, "stable", defaults)
        services[owner.name] = _inference_service(owner, owner.name, spec, predictor, "stable", stable, canary)
        return Desired(services, None)

    shadowing = canary is not None and strategy == "Shadow"
    mirror = spec.rollout.shadow
    extra: list[dict[str, Any]] = []
    if shadowing and mirror.mirror_by == "Predictor":
        # No mesh needed: the stable predictor forwards a sampled copy itself (predictor/mirror.py).
        extra = [
            {"name": "PREDICTOR_MIRROR_URL", "value": mirror_url(owner, spec.model.name)},
            {"name": "PREDICTOR_MIRROR_PERCENT", "value": f"{mirror.mirror_percent:g}"},
        ]
    services[owner.name] = _inference_service(
        owner, owner.name, spec, _predictor(owner, spec, stable, "stable", defaults, extra), "stable", stable, None
    )
    if canary is not None:
        role: Role = "shadow" if shadowing else "canary"
        name = candidate_name(owner.name, strategy)
        services[name] = _inference_service(
            owner, name, spec, _predictor(owner, spec, canary, role, defaults), role, canary, None
        )
    route = None
    if spec.routing.parent_ref:
        sticky = canary is not None and strategy == "ABTest"
        route = _route(owner, spec, weight if canary is not None and not shadowing else 0, sticky)
        if shadowing and mirror.mirror_by == "Gateway":
            route["spec"]["rules"][0]["filters"] = [_request_mirror(owner, mirror.mirror_percent)]
    return Desired(services, route)


def _request_mirror(owner: Owner, percent: float) -> dict[str, Any]:
    """Gateway API RequestMirror: the Gateway copies `percent` of the requests to the shadow, answers ignored."""
    mirror: dict[str, Any] = {"backendRef": {"name": f"{shadow_name(owner.name)}-predictor", "port": 80}}
    if float(percent).is_integer():
        mirror["percent"] = int(percent)
    else:
        mirror["fraction"] = {"numerator": round(percent * 100), "denominator": 10_000}
    return {"type": "RequestMirror", "requestMirror": mirror}


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(owner: Owner, role: Role) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_DEPLOYMENT: owner.name,
        LABEL_ROLE: role,
        "app.kubernetes.io/name": owner.name,
        "app.kubernetes.io/part-of": "ml-pipeline",
    }


def _inference_service(
    owner: Owner,
    name: str,
    spec: ModelDeploymentSpec,
    predictor: dict[str, Any],
    role: Role,
    model: ServedModel,
    canary: ServedModel | None,
) -> dict[str, Any]:
    annotations = {
        DEPLOYMENT_MODE_ANNOTATION: spec.deployment_mode,
        "mlpipeline.io/model-name": spec.model.name,
        "mlpipeline.io/model-version": model.version,
    }
    if canary is not None:
        annotations["mlpipeline.io/canary-version"] = canary.version
    return {
        "apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": _labels(owner, role),
            "annotations": annotations,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {"predictor": predictor},
    }


def _env(owner: Owner, spec: ModelDeploymentSpec, model: ServedModel, role: Role) -> list[dict[str, Any]]:
    # Identity first: the predictor stamps every prediction log row with it (that is how analysis tells roles apart).
    env: list[dict[str, Any]] = [
        {"name": "DEPLOYMENT_ID", "value": owner.deployment_id},
        {"name": "DEPLOYMENT_ROLE", "value": role},
        {"name": "MODEL_VERSION", "value": model.version},
        {"name": "PREDICTOR_MODEL_NAME", "value": spec.model.name},
    ]
    if spec.predictor.runtime:
        # KServe's storage initializer has fetched storageUri into /mnt/models.
        env.append({"name": "PREDICTOR_MODEL_DIR", "value": "/mnt/models"})
    else:
        # The project's predictor fetches the version itself through mlcore.storage (manifest-checked).
        env.append({"name": "PREDICTOR_STORAGE_URI", "value": model.storage_uri})
    env += [{"name": e.name, "value": e.value} for e in spec.predictor.env]
    return env


def _env_from(spec: ModelDeploymentSpec, defaults: Defaults) -> list[dict[str, Any]]:
    database = spec.database_secret_ref.name if spec.database_secret_ref else defaults.database_secret
    storage = spec.storage_secret_ref.name if spec.storage_secret_ref else defaults.storage_secret
    return [{"secretRef": {"name": secret}} for secret in dict.fromkeys(s for s in (database, storage) if s)]


def _predictor(
    owner: Owner,
    spec: ModelDeploymentSpec,
    model: ServedModel,
    role: Role,
    defaults: Defaults,
    extra_env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    p = spec.predictor
    predictor: dict[str, Any] = {
        "minReplicas": p.min_replicas,
        "maxReplicas": p.max_replicas,
        "labels": _labels(owner, role),
    }
    if p.service_account_name:
        predictor["serviceAccountName"] = p.service_account_name
    container: dict[str, Any] = {
        "env": _env(owner, spec, model, role) + (extra_env or []),
        "resources": {k: dict(v) for k, v in p.resources.items()},
    }
    env_from = _env_from(spec, defaults)
    if env_from:
        container["envFrom"] = env_from
    if p.runtime:
        # A ServingRuntime serves it; KServe's storage initializer fetches storageUri into /mnt/models.
        predictor["model"] = {
            "modelFormat": {"name": p.model_format},
            "runtime": p.runtime,
            "storageUri": model.storage_uri,
            **container,
        }
    else:
        # The project's own predictor image (python -m predictor, a kserve.Model).
        predictor["containers"] = [
            {
                "name": "kserve-container",
                "image": p.image or defaults.predictor_image,
                # Replaces the image's default arguments (`--model_dir /mnt/models`, for a plain `docker run` with a
                # mounted version), which would contradict PREDICTOR_STORAGE_URI: the predictor refuses both.
                "args": ["--model_name", spec.model.name],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                **container,
            }
        ]
        policy.harden(predictor)
    return predictor


def _route(owner: Owner, spec: ModelDeploymentSpec, weight: int, sticky: bool = False) -> dict[str, Any]:
    parent = spec.routing.parent_ref
    assert parent is not None
    parent_ref: dict[str, Any] = {"name": parent.name}
    if parent.namespace:
        parent_ref["namespace"] = parent.namespace
    backends = [{"name": f"{owner.name}-predictor", "port": 80, "weight": 100 - weight}]
    if weight:
        backends.append({"name": f"{canary_name(owner.name)}-predictor", "port": 80, "weight": weight})
    rule: dict[str, Any] = {"backendRefs": backends}
    stickiness = spec.rollout.ab_test.stickiness
    if sticky and stickiness is not None:
        # A/B: the Gateway pins each user (the header's value, or its session cookie) to one backend, so a user
        # stays in one arm (Gateway API session persistence, GEP-1619).
        rule["sessionPersistence"] = (
            {"sessionName": stickiness.header, "type": "Header"}
            if stickiness.header
            else {"sessionName": stickiness.cookie, "type": "Cookie"}
        )
    route_spec: dict[str, Any] = {"parentRefs": [parent_ref], "rules": [rule]}
    if spec.routing.hostnames:
        route_spec["hostnames"] = list(spec.routing.hostnames)
    return {
        "apiVersion": f"{ROUTE_GROUP}/{ROUTE_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": _labels(owner, "stable"),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": route_spec,
    }


def is_ready(isvc: dict[str, Any] | None) -> tuple[bool, str]:
    """KServe's verdict on an InferenceService: Ready=True for the current generation."""
    if not isvc:
        return False, "InferenceService not found"
    status = isvc.get("status") or {}
    generation = (isvc.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        return False, f"InferenceService generation {generation} not yet observed (at {observed})"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if str(condition.get("status")) == "True":
                return True, "InferenceService is Ready"
            return False, f"InferenceService not Ready: {condition.get('reason') or condition.get('message') or ''}"
    return False, "InferenceService reports no Ready condition yet"
