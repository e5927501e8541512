"""Lambda functions, versions, aliases and the Event invocation queue; the local function
registry (stratum_lambda_functions) is gone: `stratum lambda register/load` create Lambda functions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 19:59:29.802448
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lambda_aliases',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('function_name', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('function_version', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=256), nullable=False),
    sa.Column('routing_config', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('revision_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'function_name', 'name', name=op.f('pk_lambda_aliases'))
    )
    op.create_table('lambda_event_queue',
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('function_name', sa.String(length=64), nullable=False),
    sa.Column('qualifier', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.BigInteger(), nullable=False),
    sa.Column('claimed_until', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_lambda_event_queue'))
    )
    with op.batch_alter_table('lambda_event_queue', schema=None) as batch_op:
        batch_op.create_index('ix_lambda_event_queue_due', ['not_before'], unique=False)

    op.create_table('lambda_functions',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('policy', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('policy_revision', sa.String(length=36), nullable=False),
    sa.Column('last_version', sa.Integer(), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_lambda_functions'))
    )
    op.create_table('lambda_versions',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('function_name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('code_sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'function_name', 'version', name=op.f('pk_lambda_versions'))
    )
    op.drop_table('stratum_lambda_functions')


def downgrade() -> None:
    op.create_table('stratum_lambda_functions',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=140), nullable=False),
    sa.Column('handler', sa.String(length=512), nullable=True),
    sa.Column('command', stratum.store.schema.JsonType, nullable=True),
    sa.Column('code_path', sa.Text(), nullable=True),
    sa.Column('environment', stratum.store.schema.JsonType, nullable=True),
    sa.Column('timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_stratum_lambda_functions'))
    )
    op.drop_table('lambda_versions')
    op.drop_table('lambda_functions')
    with op.batch_alter_table('lambda_event_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_lambda_event_queue_due')

    op.drop_table('lambda_event_queue')
    op.drop_table('lambda_aliases')
