"""SageMaker endpoint configs, endpoints and their instances (model-server processes)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 19:36:04.306496
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sagemaker_endpoint_configs',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name_key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('request', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name_key', name=op.f('pk_sagemaker_endpoint_configs'))
    )
    with op.batch_alter_table('sagemaker_endpoint_configs', schema=None) as batch_op:
        batch_op.create_index('ix_sagemaker_endpoint_configs_created', ['account_id', 'region', 'created_at'], unique=False)

    op.create_table('sagemaker_endpoint_instances',
    sa.Column('instance_id', sa.String(length=32), nullable=False),
    sa.Column('container', sa.String(length=64), nullable=False),
    sa.Column('endpoint_id', sa.String(length=32), nullable=False),
    sa.Column('deployment', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=256), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('marker', sa.String(length=64), nullable=True),
    sa.Column('host', sa.String(length=256), nullable=True),
    sa.Column('owner', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('drain_until', sa.Float(), nullable=True),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('instance_id', 'container', name=op.f('pk_sagemaker_endpoint_instances'))
    )
    with op.batch_alter_table('sagemaker_endpoint_instances', schema=None) as batch_op:
        batch_op.create_index('ix_sagemaker_endpoint_instances_endpoint', ['endpoint_id'], unique=False)

    op.create_table('sagemaker_endpoints',
    sa.Column('endpoint_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name_key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('config_name', sa.String(length=64), nullable=False),
    sa.Column('serving', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('pending', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_modified_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('endpoint_id', name=op.f('pk_sagemaker_endpoints')),
    sa.UniqueConstraint('account_id', 'region', 'name_key', name=op.f('uq_sagemaker_endpoints_account_id'))
    )
    with op.batch_alter_table('sagemaker_endpoints', schema=None) as batch_op:
        batch_op.create_index('ix_sagemaker_endpoints_listing', ['account_id', 'region', 'created_at'], unique=False)
        batch_op.create_index('ix_sagemaker_endpoints_status', ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sagemaker_endpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_endpoints_status')
        batch_op.drop_index('ix_sagemaker_endpoints_listing')

    op.drop_table('sagemaker_endpoints')
    with op.batch_alter_table('sagemaker_endpoint_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_endpoint_instances_endpoint')

    op.drop_table('sagemaker_endpoint_instances')
    with op.batch_alter_table('sagemaker_endpoint_configs', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_endpoint_configs_created')

    op.drop_table('sagemaker_endpoint_configs')
