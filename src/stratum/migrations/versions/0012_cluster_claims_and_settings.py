"""cluster: execution and job claims with leases, installation settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 17:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stratum_claims',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'account_id', 'region', 'item_id', name=op.f('pk_stratum_claims'))
    )
    with op.batch_alter_table('stratum_claims', schema=None) as batch_op:
        batch_op.create_index('ix_stratum_claims_owner', ['owner'], unique=False)
        batch_op.create_index('ix_stratum_claims_expires', ['kind', 'expires_at'], unique=False)

    op.create_table('stratum_cluster_settings',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_stratum_cluster_settings'))
    )


def downgrade() -> None:
    op.drop_table('stratum_cluster_settings')
    with op.batch_alter_table('stratum_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_stratum_claims_expires')
        batch_op.drop_index('ix_stratum_claims_owner')
    op.drop_table('stratum_claims')
