"""Lambda layers and their versions

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lambda_layers',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=140), nullable=False),
    sa.Column('last_version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_lambda_layers'))
    )
    op.create_table('lambda_layer_versions',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('layer_name', sa.String(length=140), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('config', stratum.store.schema.JsonType, nullable=False),
    sa.Column('code_sha256', sa.String(length=64), nullable=False),
    sa.Column('code_size', sa.BigInteger(), nullable=False),
    sa.Column('policy', stratum.store.schema.JsonType, nullable=False),
    sa.Column('policy_revision', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'layer_name', 'version',
                            name=op.f('pk_lambda_layer_versions'))
    )


def downgrade() -> None:
    op.drop_table('lambda_layer_versions')
    op.drop_table('lambda_layers')
