"""SageMaker notebook instances, lifecycle configurations and code repositories

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sagemaker_notebook_instances',
    sa.Column('instance_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('name_key', sa.String(length=63), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('instance_type', sa.String(length=64), nullable=False),
    sa.Column('role_arn', sa.String(length=2048), nullable=False),
    sa.Column('lifecycle_config_name', sa.String(length=63), nullable=True),
    sa.Column('volume_size', sa.Integer(), nullable=False),
    sa.Column('config', stratum.store.schema.JsonType, nullable=False),
    sa.Column('tags', stratum.store.schema.JsonType, nullable=False),
    sa.Column('created_once', sa.Boolean(), nullable=False),
    sa.Column('process', stratum.store.schema.JsonType, nullable=True),
    sa.Column('credentials_token', sa.String(length=64), nullable=True),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_modified_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_sagemaker_notebook_instances')),
    sa.UniqueConstraint('account_id', 'region', 'name_key',
                        name=op.f('uq_sagemaker_notebook_instances_account_id'))
    )
    with op.batch_alter_table('sagemaker_notebook_instances', schema=None) as batch_op:
        batch_op.create_index('ix_sagemaker_notebook_instances_token', ['credentials_token'], unique=False)

    op.create_table('sagemaker_notebook_lifecycle_configs',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name_key', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('on_create', stratum.store.schema.JsonType, nullable=False),
    sa.Column('on_start', stratum.store.schema.JsonType, nullable=False),
    sa.Column('tags', stratum.store.schema.JsonType, nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_modified_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name_key', name=op.f('pk_sagemaker_notebook_lifecycle_configs'))
    )
    op.create_table('sagemaker_code_repositories',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name_key', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('git_config', stratum.store.schema.JsonType, nullable=False),
    sa.Column('tags', stratum.store.schema.JsonType, nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_modified_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name_key', name=op.f('pk_sagemaker_code_repositories'))
    )


def downgrade() -> None:
    op.drop_table('sagemaker_code_repositories')
    op.drop_table('sagemaker_notebook_lifecycle_configs')
    with op.batch_alter_table('sagemaker_notebook_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_sagemaker_notebook_instances_token')
    op.drop_table('sagemaker_notebook_instances')
