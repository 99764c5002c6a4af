"""evidence attachments: attachment references and queued WhatsApp media downloads

Revision ID: intake_attachments
Revises: intake_channels
Create Date: 2026-11-28 01:50:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = 'intake_attachments'
down_revision = 'intake_channels'
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
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaints.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('complaint_id', 'sha256', name='uq_attachments_complaint_sha256')
    )
    op.create_index('ix_attachments_sha256', 'attachments', ['sha256'], unique=False)
    op.create_table('media_downloads',
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('complaint_id', sa.String(length=36), nullable=False),
    sa.Column('media_id', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaints.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index('ix_media_downloads_due', 'media_downloads', ['state', 'next_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_media_downloads_due', table_name='media_downloads')
    op.drop_table('media_downloads')
    op.drop_index('ix_attachments_sha256', table_name='attachments')
    op.drop_table('attachments')
