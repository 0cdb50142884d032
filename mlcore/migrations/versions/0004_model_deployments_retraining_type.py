"""model_deployments.deployment_type 'retraining': the steps of the operator's retraining loop

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_model_deployments_deployment_type"


def upgrade() -> None:
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.drop_constraint(_NAME, type_="check")
        batch_op.create_check_constraint(_NAME, "deployment_type IN ('stable', 'canary', 'shadow', 'retraining')")


def downgrade() -> None:
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.drop_constraint(_NAME, type_="check")
        batch_op.create_check_constraint(_NAME, "deployment_type IN ('stable', 'canary', 'shadow')")
