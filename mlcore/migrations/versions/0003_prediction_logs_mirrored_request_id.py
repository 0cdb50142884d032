"""prediction_logs.mirrored_request_id: a shadow prediction names the stable prediction it mirrors

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mirrored_request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.drop_column("mirrored_request_id")
