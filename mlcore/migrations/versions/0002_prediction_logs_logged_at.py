"""prediction_logs.logged_at: the time a row reached the database (drift windows cut on it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable first, backfilled from predicted_at (the rows already there were analysed by it), then the server
    # default and NOT NULL (on SQLite through a table copy: it cannot add a column with a non-constant default).
    op.add_column("prediction_logs", sa.Column("logged_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE prediction_logs SET logged_at = predicted_at")
    with op.batch_alter_table("prediction_logs") as batch:
        batch.alter_column(
            "logged_at", existing_type=sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        )
    op.create_index(
        "ix_prediction_logs_deployment_version_logged",
        "prediction_logs",
        ["deployment_id", "model_version", "logged_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_logs_deployment_version_logged", table_name="prediction_logs")
    with op.batch_alter_table("prediction_logs") as batch:
        batch.drop_column("logged_at")
