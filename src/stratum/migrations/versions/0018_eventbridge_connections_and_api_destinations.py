"""EventBridge connections and API destinations

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 20:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events_connections',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('authorization_type', sa.String(length=32), nullable=False),
    sa.Column('auth', stratum.store.schema.JsonType, nullable=False),
    sa.Column('secrets', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('authorized_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_events_connections'))
    )
    op.create_table('events_api_destinations',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('connection_arn', sa.String(length=1600), nullable=False),
    sa.Column('endpoint', sa.String(length=2048), nullable=False),
    sa.Column('http_method', sa.String(length=16), nullable=False),
    sa.Column('rate_limit', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_events_api_destinations'))
    )


def downgrade() -> None:
    op.drop_table('events_api_destinations')
    op.drop_table('events_connections')
