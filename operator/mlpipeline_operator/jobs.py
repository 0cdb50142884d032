"""Render the retraining loop's batch/v1 Jobs (pure): a training attempt, and the champion move after a
promotion; read a Job's end from its status."""

from __future__ import annotations

from typing import Any

from mlpipeline_operator import LABEL_DEPLOYMENT, LABEL_MANAGED_BY, LABEL_ROLE, MANAGER
from mlpipeline_operator.loop import JobSeen
from mlpipeline_operator.render import Defaults, Owner, owner_reference
from mlpipeline_operator.spec import ModelDeploymentSpec

LABEL_LOOP = "mlpipeline.io/retraining-loop"
ROLE = "retraining"


def job_labels(owner: Owner, loop: int) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_DEPLOYMENT: owner.name, LABEL_ROLE: ROLE, LABEL_LOOP: str(loop)}


def render_job(
    owner: Owner, spec: ModelDeploymentSpec, name: str, loop: int, defaults: Defaults, training_image: str
) -> dict[str, Any]:
    """One attempt of the loop: `python -m training_job` with the spec's flags, tagged with the Job's identity
    (--retraining-job) so the operator finds the version it published in experiment_runs."""
    retraining = spec.retraining
    assert retraining is not None
    job = retraining.job
    args = [*job.args, "--model-name", spec.model.name, "--retraining-job", f"{owner.namespace}/{name}"]
    if retraining.include_feedback:
        args += ["--include-feedback", "--feedback-deployment", owner.deployment_id]
    container = _container(owner, spec, defaults, training_image, args, job.resources)
    # backoffLimit 0: the operator retries, after the cooldown, up to maxAttempts.
    return _job(owner, spec, name, loop, container, backoff=0, deadline=int(job.timeout_delta.total_seconds()))


# Moving an alias: a small pod, retried by the Job controller (MLflow may be briefly unreachable).
CHAMPION_RESOURCES = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}


def render_champion_job(
    owner: Owner,
    spec: ModelDeploymentSpec,
    name: str,
    training_job: str,
    loop: int,
    defaults: Defaults,
    training_image: str,
) -> dict[str, Any]:
    """After a promotion: the training image with `--promote-champion <namespace>/<training Job>` moves the MLflow
    alias champion to the version that Job registered. Same image, env and Secrets as the training run, so it
    reaches the same MLflow and database; the operator itself needs no MLflow access."""
    args = ["--promote-champion", f"{owner.namespace}/{training_job}"]
    container = _container(owner, spec, defaults, training_image, args, CHAMPION_RESOURCES)
    return _job(owner, spec, name, loop, container, backoff=3, deadline=600)


def _container(
    owner: Owner,
    spec: ModelDeploymentSpec,
    defaults: Defaults,
    training_image: str,
    args: list[str],
    resources: dict[str, Any],
) -> dict[str, Any]:
    retraining = spec.retraining
    assert retraining is not None
    job = retraining.job
    database = spec.database_secret_ref.name if spec.database_secret_ref else defaults.database_secret
    storage = spec.storage_secret_ref.name if spec.storage_secret_ref else defaults.storage_secret
    container: dict[str, Any] = {
        "name": "train",
        "image": job.image or training_image,
        "args": args,
        "env": [{"name": e.name, "value": e.value} for e in job.env],
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    env_from = [{"secretRef": {"name": s}} for s in dict.fromkeys(x for x in (database, storage) if x)]
    if env_from:
        container["envFrom"] = env_from
    return container


def _job(
    owner: Owner,
    spec: ModelDeploymentSpec,
    name: str,
    loop: int,
    container: dict[str, Any],
    *,
    backoff: int,
    deadline: int,
) -> dict[str, Any]:
    assert spec.retraining is not None
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    if spec.retraining.job.service_account_name:
        pod["serviceAccountName"] = spec.retraining.job.service_account_name
    labels = job_labels(owner, loop)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": backoff,
            "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def job_seen(job: dict[str, Any]) -> JobSeen:
    """Complete=True -> succeeded; Failed=True -> failed with its reason (DeadlineExceeded: timed out); with the
    Job's owners, so that the loop follows only a Job its ModelDeployment owns."""
    metadata = job.get("metadata") or {}
    name = str(metadata.get("name", ""))
    owners = tuple(
        (str(o.get("kind", "")), str(o.get("name", "")), str(o.get("uid", "")))
        for o in metadata.get("ownerReferences") or []
    )
    for condition in (job.get("status") or {}).get("conditions") or []:
        if str(condition.get("status")) != "True":
            continue
        if condition.get("type") == "Complete":
            return JobSeen(name, "succeeded", owners=owners)
        if condition.get("type") == "Failed":
            reason = str(condition.get("reason") or condition.get("message") or "failed")
            return JobSeen(name, "failed", reason, owners=owners)
    return JobSeen(name, "running", owners=owners)
