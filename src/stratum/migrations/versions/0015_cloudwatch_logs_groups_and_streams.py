"""CloudWatch Logs groups and streams (events are kept in append-only files per stream)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('logs_groups',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('kms_key_id', sa.String(length=256), nullable=True),
    sa.Column('log_group_class', sa.String(length=32), nullable=False),
    sa.Column('tags', stratum.store.schema.JsonType, nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_logs_groups'))
    )
    op.create_table('logs_streams',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('group_name', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'group_name', 'name', name=op.f('pk_logs_streams'))
    )


def downgrade() -> None:
    op.drop_table('logs_streams')
    op.drop_table('logs_groups')
