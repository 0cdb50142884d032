"""The training job inside the operator's retraining loop: what the operator reads of a run it started.

The Job is started with `--retraining-job <namespace>/<job>`; its experiment_runs row carries that tag and, once
the run finished, `offered` (the MLflow champion/challenger decision: a challenger that is not better than the
champion on the same test split is recorded and not offered for rollout) with the decision's reason. The
operator finds the published version there (mlpipeline_operator/loop_records.py): no pod logs, no RBAC beyond
batch/jobs, and it survives the Job's deletion.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlcore.db import ExperimentRun, session_scope

RETRAINING_TAG = "retraining_job"  # read by mlpipeline_operator.loop_records


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
