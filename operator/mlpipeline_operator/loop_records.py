"""What the retraining loop reads and writes in the database: open monitoring_alerts of a deployment, the version
a retraining Job published (experiment_runs, tagged with the Job by the training job) and the alerts a promotion
resolves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine

from mlcore.db import MonitoringAlert, session_scope
from mlcore.db.retraining_runs import latest_retraining_run
from mlpipeline_operator.loop import Alert, Resolution, TrainingResult
from mlpipeline_operator.state import Retraining


def open_alerts(engine: Engine, deployment_id: str) -> list[Alert]:
    """Open alerts of the deployment (one indexed query: ix_monitoring_alerts_open)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(MonitoringAlert.id, MonitoringAlert.alert_type, MonitoringAlert.severity).where(
                MonitoringAlert.deployment_id == deployment_id, MonitoringAlert.resolved.is_(False)
            )
        ).all()
    return [Alert(int(i), str(kind), str(severity)) for i, kind, severity in rows]


def training_result(engine: Engine, job: str) -> TrainingResult | None:
    """The finished run of the retraining Job `namespace/name`, if it recorded one."""
    with session_scope(engine) as session:
        run = latest_retraining_run(session, job)
        if run is None or not run.model_version or not run.storage_uri:
            return None
        tags: dict[str, Any] = run.tags or {}
        accuracy = (run.metrics or {}).get("accuracy")
        return TrainingResult(
            run.model_version,
            run.storage_uri,
            str(tags.get("offered", "")).lower() == "true",
            str(tags.get("champion_decision") or ""),
            float(accuracy) if accuracy is not None else None,
        )


def resolve_alerts(
    engine: Engine, deployment_id: str, resolution: Resolution, rollout_id: str | None, retraining: Retraining
) -> tuple[int, ...]:
    """Mark resolved the open alerts of the deployment a promotion answers (loop.Resolution), naming the rollout
    and the loop in details.resolvedBy. Returns the ids changed, in order; a re-run changes nothing more."""
    answered = or_(
        MonitoringAlert.id.in_(resolution.trigger_ids),
        and_(
            MonitoringAlert.alert_type.in_(resolution.kinds),
            or_(MonitoringAlert.model_version.is_(None), MonitoringAlert.model_version != resolution.promoted_version),
        ),
    )
    reference = {
        "deployment": deployment_id,
        "rolloutId": rollout_id,
        "version": resolution.promoted_version,
        "job": retraining.job_name,
        "loop": retraining.loop,
    }
    now = datetime.now(UTC)
    changed: list[int] = []
    with session_scope(engine) as session:
        found = session.execute(
            select(MonitoringAlert)
            .where(
                MonitoringAlert.deployment_id == deployment_id,
                MonitoringAlert.resolved.is_(False),
                MonitoringAlert.created_at <= resolution.before,
                answered,
            )
            .order_by(MonitoringAlert.id)
        ).scalars()
        for alert in found:
            alert.resolved = True
            alert.resolved_at = now
            why = "trigger" if alert.id in resolution.trigger_ids else "open at promotion"
            alert.details = {**(alert.details or {}), "resolvedBy": {**reference, "as": why}}
            changed.append(int(alert.id))
    return tuple(changed)
