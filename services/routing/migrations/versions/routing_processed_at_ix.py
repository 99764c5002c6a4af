"""processed_events: index on processed_at for the retention sweep (shared/retention.py)

Revision ID: routing_processed_at_ix
Revises: routing_attachments
Create Date: 2026-11-28 12:15:00
"""

from alembic import op

from shared.migrate import create_index_online

revision = 'routing_processed_at_ix'
down_revision = 'routing_attachments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_online(op, 'ix_processed_events_processed_at', 'processed_events',
                        ['processed_at'])


def downgrade() -> None:
    op.drop_index('ix_processed_events_processed_at', table_name='processed_events')
