"""Notebook instances get their role like model servers and jobs, from a signed token the
container-credentials endpoint checks: the stored bearer token goes

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sagemaker_notebook_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_notebook_instances_token')
        batch_op.drop_column('credentials_token')


def downgrade() -> None:
    with op.batch_alter_table('sagemaker_notebook_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credentials_token', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_sagemaker_notebook_instances_token', ['credentials_token'], unique=False)
