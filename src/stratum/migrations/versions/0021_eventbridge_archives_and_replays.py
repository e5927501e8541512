"""EventBridge archives, archived events and replays

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events_archives',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('bus_name', sa.String(length=256), nullable=False),
    sa.Column('bus_arn', sa.String(length=1600), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('event_pattern', sa.Text(), nullable=True),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('kms_key_identifier', sa.String(length=2048), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_events_archives'))
    )
    with op.batch_alter_table('events_archives', schema=None) as batch_op:
        batch_op.create_index('ix_events_archives_bus', ['account_id', 'region', 'bus_name'], unique=False)

    op.create_table('events_archived',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('archive_name', sa.String(length=48), nullable=False),
    sa.Column('event', stratum.store.schema.JsonType, nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('time', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('archived_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events_archived'))
    )
    with op.batch_alter_table('events_archived', schema=None) as batch_op:
        batch_op.create_index('ix_events_archived_archive', ['account_id', 'region', 'archive_name', 'seq'],
                              unique=False)

    op.create_table('events_replays',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('archive_name', sa.String(length=48), nullable=False),
    sa.Column('archive_arn', sa.String(length=1600), nullable=False),
    sa.Column('destination', stratum.store.schema.JsonType, nullable=False),
    sa.Column('event_start_time', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('event_end_time', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason', sa.String(length=512), nullable=True),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('last_replayed_time', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('replay_start_time', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('replay_end_time', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_events_replays'))
    )
    with op.batch_alter_table('events_replays', schema=None) as batch_op:
        batch_op.create_index('ix_events_replays_state', ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events_replays', schema=None) as batch_op:
        batch_op.drop_index('ix_events_replays_state')
    op.drop_table('events_replays')
    with op.batch_alter_table('events_archived', schema=None) as batch_op:
        batch_op.drop_index('ix_events_archived_archive')
    op.drop_table('events_archived')
    with op.batch_alter_table('events_archives', schema=None) as batch_op:
        batch_op.drop_index('ix_events_archives_bus')
    op.drop_table('events_archives')
