"""evidence attachments: references learnt from intake's events

Revision ID: routing_attachments
Revises: routing_inbox
Create Date: 2026-11-28 02:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = 'routing_attachments'
down_revision = 'routing_inbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attachments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('complaint_id', sa.String(length=36), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('added_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('complaint_id', 'sha256', name='uq_routing_attachments_complaint_sha256')
    )


def downgrade() -> None:
    op.drop_table('attachments')
