"""model_deployments rows, upserted on (deployment_id, rollout_id, deployment_type): a re-run never duplicates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from mlcore.db import ModelDeployment, session_scope
from mlpipeline_operator.decisions import Record


def record(engine: Engine, deployment_id: str, namespace: str, model_name: str, rows: Iterable[Record]) -> int:
    """Upsert each row; None outcome/metrics keep what is there. Returns the number of rows written."""
    rows = list(rows)
    if not rows:
        return 0
    now = datetime.now(UTC)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    table = cast(Table, ModelDeployment.__table__)
    with session_scope(engine) as session:
        for row in rows:
            values = {
                "deployment_id": deployment_id,
                "namespace": namespace,
                "rollout_id": row.rollout_id,
                "deployment_type": row.deployment_type,
                "model_name": model_name,
                "model_version": row.version,
                "storage_uri": row.storage_uri,
                "is_active": row.is_active,
                "traffic_percent": row.traffic_percent,
                "model_metrics": row.metrics,
                "outcome": row.outcome,
                "started_at": now,
                "ended_at": now if row.ended else None,
                "updated_at": now,
            }
            statement = insert(table).values(**values)
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["deployment_id", "rollout_id", "deployment_type"],
                set_={
                    "is_active": excluded.is_active,
                    "traffic_percent": excluded.traffic_percent,
                    "outcome": func.coalesce(excluded.outcome, table.c.outcome),
                    "model_metrics": func.coalesce(excluded.model_metrics, table.c.model_metrics),
                    # The first end is the true one: a re-run must not move it.
                    "ended_at": func.coalesce(table.c.ended_at, excluded.ended_at),
                    "updated_at": excluded.updated_at,
                },
            )
            session.execute(statement)
    return len(rows)


def retire_all(engine: Engine, deployment_id: str, outcome: str = "deleted") -> int:
    """The ModelDeployment is gone: every active row becomes inactive. Returns the rows changed."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        result = session.execute(
            update(ModelDeployment)
            .where(ModelDeployment.deployment_id == deployment_id, ModelDeployment.is_active.is_(True))
            .values(
                is_active=False,
                outcome=outcome,
                traffic_percent=0,
                ended_at=func.coalesce(ModelDeployment.ended_at, now),
                updated_at=now,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
