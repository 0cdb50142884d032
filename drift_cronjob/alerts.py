"""monitoring_alerts bookkeeping: one open alert per deployment, version and type; resolved when it clears."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from drift_cronjob.checks import Condition
from drift_cronjob.db import Target
from mlcore.db import ModelDeployment, MonitoringAlert
from mlcore.timeutil import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    raised: list[int]
    resolved: list[int]


def _open_alert(session: Session, target: Target, alert_type: str) -> MonitoringAlert | None:
    return session.scalars(
        select(MonitoringAlert)
        .where(
            MonitoringAlert.deployment_id == target.deployment_id,
            MonitoringAlert.model_version == target.model_version,
            MonitoringAlert.alert_type == alert_type,
            MonitoringAlert.resolved.is_(False),
        )
        .order_by(MonitoringAlert.created_at)
        .with_for_update()
    ).first()


def reconcile(
    session: Session, target: Target, conditions: list[Condition], run_id: str, report_uri: str | None
) -> Reconciled:
    """Raise new alerts, keep open ones without duplicating them, resolve those whose condition cleared."""
    now = utc_now()
    raised: list[int] = []
    resolved: list[int] = []
    for condition in conditions:
        if condition.active is None:
            continue  # not evaluated this run: an open alert stays open, nothing new is raised
        existing = _open_alert(session, target, condition.alert_type)
        if condition.active and existing is not None:
            # Still firing: no second alert; the open one records that it was seen again.
            existing.details = {
                **(existing.details or {}),
                "last_seen_run_id": run_id,
                "last_seen_at": now.isoformat(),
                "last_report_uri": report_uri,
                "last_message": condition.message,
            }
            if condition.severity == "critical" and existing.severity != "critical":
                existing.severity = "critical"
        elif condition.active:
            alert = MonitoringAlert(
                deployment_id=target.deployment_id,
                model_version=target.model_version,
                alert_type=condition.alert_type,
                severity=condition.severity,
                message=condition.message,
                details=condition.details,
                report_uri=report_uri,
                run_id=run_id,
                resolved=False,
                notified=False,
                created_at=now,
            )
            session.add(alert)
            session.flush()
            raised.append(alert.id)
            log.warning("alert raised: %s", condition.message)
        elif existing is not None:
            existing.resolved = True
            existing.resolved_at = now
            existing.details = {**(existing.details or {}), "resolved_by_run_id": run_id}
            resolved.append(existing.id)
            log.info("alert %d (%s) resolved: the condition cleared", existing.id, condition.alert_type)
    return Reconciled(raised, resolved)


def resolve_retired(session: Session) -> list[int]:
    """Resolve open alerts of versions no longer active anywhere: their condition can never be re-checked."""
    active = select(ModelDeployment.deployment_id, ModelDeployment.model_version).where(
        ModelDeployment.is_active.is_(True)
    )
    stale = session.scalars(
        select(MonitoringAlert).where(
            MonitoringAlert.resolved.is_(False),
            tuple_(MonitoringAlert.deployment_id, MonitoringAlert.model_version).not_in(active),
        )
    ).all()
    now = utc_now()
    for alert in stale:
        alert.resolved = True
        alert.resolved_at = now
        alert.details = {**(alert.details or {}), "resolved_reason": "the model version is no longer deployed"}
    return [a.id for a in stale]
