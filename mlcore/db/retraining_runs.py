"""The contract between the training job and the operator's retraining loop in experiment_runs: a run the loop
started carries the tag RETRAINING_TAG = "<namespace>/<job>" (written by training_job/challenger.py), and the loop
reads back that Job's newest finished top-level run (mlpipeline_operator/loop_records.py, and the training job's
--promote-champion)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlcore.db.models import ExperimentRun

RETRAINING_TAG = "retraining_job"


def latest_retraining_run(session: Session, job: str) -> ExperimentRun | None:
    """The newest finished top-level run tagged with the retraining Job `namespace/name`, if any."""
    return session.scalars(
        select(ExperimentRun)
        .where(ExperimentRun.status == "FINISHED", ExperimentRun.parent_run_id.is_(None))
        .where(ExperimentRun.tags[RETRAINING_TAG].as_string() == job)
        .order_by(ExperimentRun.id.desc())
    ).first()
