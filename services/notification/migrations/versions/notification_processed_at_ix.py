"""processed_events: index on processed_at for the retention sweep (shared/retention.py)

Revision ID: notification_processed_at_ix
Revises: notification_lifecycle
Create Date: 2026-11-28 12:15:00
"""

from alembic import op

revision = 'notification_processed_at_ix'
down_revision = 'notification_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL: a large processed_events keeps taking inserts while it builds.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index('ix_processed_events_processed_at', 'processed_events',
                            ['processed_at'], unique=False, postgresql_concurrently=True)
    else:
        op.create_index('ix_processed_events_processed_at', 'processed_events',
                        ['processed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_processed_events_processed_at', table_name='processed_events')
