"""active executions: a partial index instead of an index on every status

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 22:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('Executing', 'Stopping')"


def upgrade() -> None:
    with op.batch_alter_table('sagemaker_pipeline_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_pipeline_executions_status')
        batch_op.create_index('ix_sagemaker_pipeline_executions_active', ['status'], unique=False,
                              sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))


def downgrade() -> None:
    with op.batch_alter_table('sagemaker_pipeline_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_pipeline_executions_active')
        batch_op.create_index('ix_sagemaker_pipeline_executions_status', ['status'], unique=False)
