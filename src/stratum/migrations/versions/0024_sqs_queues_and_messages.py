"""SQS queues, messages and FIFO deduplication ids

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 23:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stratum.store.schema

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sqs_queues',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('attributes', stratum.store.schema.JsonType, nullable=False),
    sa.Column('tags', stratum.store.schema.JsonType, nullable=False),
    sa.Column('last_sequence', sa.BigInteger(), nullable=False),
    sa.Column('purged_ms', sa.BigInteger(), nullable=False),
    sa.Column('created_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_modified_at', stratum.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'name', name=op.f('pk_sqs_queues'))
    )
    op.create_table('sqs_messages',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('queue_name', sa.String(length=80), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('message_attributes', stratum.store.schema.JsonType, nullable=False),
    sa.Column('system_attributes', stratum.store.schema.JsonType, nullable=False),
    sa.Column('md5_body', sa.String(length=32), nullable=False),
    sa.Column('md5_attributes', sa.String(length=32), nullable=True),
    sa.Column('sender_id', sa.String(length=256), nullable=False),
    sa.Column('sent_ms', sa.BigInteger(), nullable=False),
    sa.Column('visible_ms', sa.BigInteger(), nullable=False),
    sa.Column('receive_count', sa.Integer(), nullable=False),
    sa.Column('first_receive_ms', sa.BigInteger(), nullable=True),
    sa.Column('receipt_token', sa.String(length=36), nullable=True),
    sa.Column('group_id', sa.String(length=128), nullable=True),
    sa.Column('dedup_id', sa.String(length=128), nullable=True),
    sa.Column('sequence', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_sqs_messages'))
    )
    with op.batch_alter_table('sqs_messages', schema=None) as batch_op:
        batch_op.create_index('ix_sqs_messages_queue_visible', ['account_id', 'region', 'queue_name', 'visible_ms'],
                              unique=False)
    op.create_table('sqs_dedup',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('queue_name', sa.String(length=80), nullable=False),
    sa.Column('scope', sa.String(length=128), nullable=False),
    sa.Column('dedup_id', sa.String(length=128), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=True),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'region', 'queue_name', 'scope', 'dedup_id', name=op.f('pk_sqs_dedup'))
    )


def downgrade() -> None:
    op.drop_table('sqs_dedup')
    with op.batch_alter_table('sqs_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sqs_messages_queue_visible')
    op.drop_table('sqs_messages')
    op.drop_table('sqs_queues')
