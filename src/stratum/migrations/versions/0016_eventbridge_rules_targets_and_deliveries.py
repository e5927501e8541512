"""eventbridge rules targets and deliveries

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 19:38:16.730217
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events_deliveries',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('bus_name', sa.String(length=256), nullable=False),
    sa.Column('rule_name', sa.String(length=64), nullable=False),
    sa.Column('rule_arn', sa.String(length=1600), nullable=False),
    sa.Column('role_arn', sa.String(length=1600), nullable=True),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('target', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('event', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('accepted_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_until', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('dead_letter_arn', sa.String(length=1600), nullable=True),
    sa.Column('result', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('finished_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events_deliveries')),
    sa.UniqueConstraint('delivery_id', name=op.f('uq_events_deliveries_delivery_id'))
    )
    with op.batch_alter_table('events_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_events_deliveries_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('events_rules',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('bus_name', sa.String(length=256), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('event_pattern', sa.Text(), nullable=True),
    sa.Column('schedule_expression', sa.String(length=256), nullable=True),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('role_arn', sa.String(length=1600), nullable=True),
    sa.Column('managed_by', sa.String(length=128), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('next_fire_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'bus_name', 'name', name=op.f('pk_events_rules'))
    )
    with op.batch_alter_table('events_rules', schema=None) as batch_op:
        batch_op.create_index('ix_events_rules_schedule', ['next_fire_at'], unique=False)

    op.create_table('events_targets',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('bus_name', sa.String(length=256), nullable=False),
    sa.Column('rule_name', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=1600), nullable=False),
    sa.Column('target', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'bus_name', 'rule_name', 'target_id', name=op.f('pk_events_targets'))
    )
    with op.batch_alter_table('events_targets', schema=None) as batch_op:
        batch_op.create_index('ix_events_targets_arn', ['account_id', 'region', 'arn'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events_targets', schema=None) as batch_op:
        batch_op.drop_index('ix_events_targets_arn')

    op.drop_table('events_targets')
    with op.batch_alter_table('events_rules', schema=None) as batch_op:
        batch_op.drop_index('ix_events_rules_schedule')

    op.drop_table('events_rules')
    with op.batch_alter_table('events_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_events_deliveries_due')

    op.drop_table('events_deliveries')
