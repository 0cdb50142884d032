"""The training job inside the operator's retraining loop: what the operator reads of a run it started.

The Job is started with `--retraining-job <namespace>/<job>`; its experiment_runs row carries that tag and, once
the run finished, `offered` (the MLflow champion/challenger decision: a challenger that is not better than the
champion on the same test split is recorded and not offered for rollout) with the decision's reason. The
operator finds the published version there (mlpipeline_operator/loop_records.py): no pod logs, no RBAC beyond
batch/jobs, and it survives the Job's deletion.

Such a run does not take the MLflow alias `champion` (nor `is_champion`): it is a candidate until its rollout ends.
When the operator promotes it, it runs this image once more as `--promote-champion <namespace>/<job>`
(`promote_champion`), which moves the alias to the version that Job registered; a rolled-back candidate keeps only
`challenger`. The operator needs no MLflow access: the Job reaches the MLflow the training run used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from mlcore.db import ExperimentRun, session_scope
from mlcore.db.retraining_runs import RETRAINING_TAG, latest_retraining_run
from mlcore.errors import ConfigurationError


def in_loop(extra: dict[str, Any]) -> bool:
    """Whether this run was started by the operator's retraining loop (--retraining-job)."""
    return bool(extra.get("retraining_job"))


def run_tags(extra: dict[str, Any]) -> dict[str, str]:
    """Tags of the run's row and MLflow run when the operator started it."""
    job = extra.get("retraining_job")
    return {RETRAINING_TAG: str(job)} if job else {}


def record_offer(engine: Engine, run_id: str, champion: bool, decision: str | None, extra: dict[str, Any]) -> None:
    """After the run: whether the candidate is offered for rollout (it became champion) and why."""
    if not extra.get("retraining_job"):
        return
    with session_scope(engine) as session:
        row = session.scalar(select(ExperimentRun).where(ExperimentRun.run_id == run_id))
        if row is None:
            return
        row.tags = {**(row.tags or {}), "offered": str(bool(champion)).lower(), "champion_decision": decision or ""}


def promote_champion(engine: Engine, job: str, set_alias: Callable[[str, str, str], None]) -> str:
    """The loop promoted the version the retraining Job `namespace/name` registered: it becomes champion (the MLflow
    alias through `set_alias(model, registry_version, why)`, and the run's is_champion flag, one per registered
    model). Idempotent: the operator's Job may run again after a restart. Returns what was done, in words."""
    with session_scope(engine) as session:
        run = latest_retraining_run(session, job)
        if run is None:
            raise ConfigurationError(f"no finished run of retraining Job {job} in experiment_runs")
        registry_version = (run.tags or {}).get("mlflow_model_version")
        if not run.registered_model_name or not registry_version:
            raise ConfigurationError(f"the run of retraining Job {job} registered no MLflow model version")
        name, run_id = run.registered_model_name, run.run_id
    set_alias(name, str(registry_version), f"promoted by the operator's retraining loop ({job})")
    with session_scope(engine) as session:
        session.execute(
            update(ExperimentRun).where(ExperimentRun.registered_model_name == name).values(is_champion=False)
        )
        session.execute(update(ExperimentRun).where(ExperimentRun.run_id == run_id).values(is_champion=True))
    return f"{name} version {registry_version} (run {run_id}) is champion"
