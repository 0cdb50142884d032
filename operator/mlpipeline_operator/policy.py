"""Operator-level policy: what a ModelDeployment may ask the cluster-wide operator to run, and how it runs.

The operator holds cluster-wide rights, so a ModelDeployment must not be a way to run any image, under any
ServiceAccount, with any Secret of its namespace: each is checked against the operator's allow-lists (chart values
-> MLP_OPERATOR_ALLOWED_*), and a spec naming something else is refused like an invalid spec (phase Failed, the
reason in the Degraded condition and an Event). The operator's own defaults are always allowed. Patterns are shell
globs (fnmatch): `registry.example/ml/*`, `predictor-*`.

The project's predictor containers get a hardened securityContext (non-root, read-only root filesystem, no
privilege escalation, no capabilities, RuntimeDefault seccomp) with an emptyDir for /tmp, where the image keeps
HOME, MLP_HOME (spill files) and the model cache.

A canary that never becomes Ready (image pull errors, a crash loop) is rolled back after
MLP_OPERATOR_CANARY_READY_DEADLINE_S instead of holding the rollout for ever.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from mlcore.errors import DataValidationError

if TYPE_CHECKING:  # render.py imports this module
    from mlpipeline_operator.config import OperatorConfig
    from mlpipeline_operator.render import Defaults
    from mlpipeline_operator.spec import ModelDeploymentSpec
    from mlpipeline_operator.state import RolloutState

# The predictor image's HOME / MLP_HOME / cache live below /tmp (predictor/Dockerfile).
WRITABLE_DIR = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not a shared host /tmp
WRITABLE_VOLUME = "tmp"
# The predictor image's MLP_CACHE_DIR: where a storage URI's version is downloaded (as the chart's runtime mounts it).
CACHE_DIR = "/cache"
CACHE_VOLUME = "cache"
RUN_AS_USER = 10001


def _allowed(value: str, patterns: list[str], defaults: tuple[str | None, ...]) -> bool:
    return value in defaults or any(fnmatchcase(value, pattern) for pattern in patterns)


def problems(spec: ModelDeploymentSpec, config: OperatorConfig, defaults: Defaults) -> list[str]:
    """Why this spec may not run under the operator's policy; empty when it may."""
    found: list[str] = []
    p = spec.predictor
    if p.image and not _allowed(p.image, config.allowed_images, (defaults.predictor_image,)):
        found.append(f"image {p.image!r} is not allowed (MLP_OPERATOR_ALLOWED_IMAGES)")
    if p.service_account_name and not _allowed(p.service_account_name, config.allowed_service_accounts, ()):
        found.append(
            f"serviceAccountName {p.service_account_name!r} is not allowed (MLP_OPERATOR_ALLOWED_SERVICE_ACCOUNTS)"
        )
    job = spec.retraining.job if spec.retraining else None
    if job and job.image and not _allowed(job.image, config.allowed_images, (config.training_image,)):
        found.append(f"retraining.job.image {job.image!r} is not allowed (MLP_OPERATOR_ALLOWED_IMAGES)")
    if job and job.service_account_name and not _allowed(job.service_account_name, config.allowed_service_accounts, ()):
        found.append(
            f"retraining.job.serviceAccountName {job.service_account_name!r} is not allowed "
            "(MLP_OPERATOR_ALLOWED_SERVICE_ACCOUNTS)"
        )
    own_secrets = (defaults.database_secret, defaults.storage_secret)
    for field, ref in (("databaseSecretRef", spec.database_secret_ref), ("storageSecretRef", spec.storage_secret_ref)):
        if ref is not None and not _allowed(ref.name, config.allowed_secrets, own_secrets):
            found.append(f"{field} {ref.name!r} is not allowed (MLP_OPERATOR_ALLOWED_SECRETS)")
    return found


def check(spec: ModelDeploymentSpec, config: OperatorConfig, defaults: Defaults) -> None:
    """DataValidationError naming every refused field: handled like an invalid spec."""
    found = problems(spec, config, defaults)
    if found:
        raise DataValidationError("refused by the operator's policy: " + "; ".join(found))


def harden(predictor: dict[str, Any]) -> None:
    """Pod and container securityContext for the project's predictor container, plus its writable /tmp and /cache
    (the root filesystem is read-only)."""
    predictor["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    predictor.setdefault("volumes", []).extend(
        [{"name": WRITABLE_VOLUME, "emptyDir": {}}, {"name": CACHE_VOLUME, "emptyDir": {}}]
    )
    for container in predictor.get("containers") or []:
        container["securityContext"] = {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        container.setdefault("volumeMounts", []).extend(
            [{"name": WRITABLE_VOLUME, "mountPath": WRITABLE_DIR}, {"name": CACHE_VOLUME, "mountPath": CACHE_DIR}]
        )


def canary_overdue(state: RolloutState, config: OperatorConfig, now: datetime) -> str | None:
    """Why the canary should be rolled back for never becoming Ready, or None while it still has time."""
    deadline = config.canary_ready_deadline_s
    if state.canary is None or not deadline:
        return None
    waited = now - state.canary.started_at
    if waited < timedelta(seconds=deadline):
        return None
    seconds = int(waited.total_seconds())
    return f"canary {state.canary.version} not Ready {seconds}s after it started (deadline {deadline:g}s)"
