"""deliveries: ix_deliveries_due, the pending deliveries in lease order (units first, then oldest)

A lease (handlers.lease_due) walks this index and stops after the deliveries it leases, instead
of reading and sorting every pending delivery: at full load thousands of complainants'
deliveries wait behind the units'.

Revision ID: notification_deliveries_due_ix
Revises: notification_processed_at_ix
Create Date: 2026-11-28 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'notification_deliveries_due_ix'
down_revision = 'notification_processed_at_ix'
branch_labels = None
depends_on = None

_COLUMNS = [sa.text("(audience <> 'unit')"), 'next_attempt_at']
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # As shared.migrate.create_index_online, for an expression and a partial index: on
    # PostgreSQL CONCURRENTLY (outside the migration's transaction), so that deliveries keep
    # being planned and sent while it builds.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index('ix_deliveries_due', 'deliveries', _COLUMNS,
                            postgresql_where=_PENDING, postgresql_concurrently=True)
    else:
        op.create_index('ix_deliveries_due', 'deliveries', _COLUMNS, sqlite_where=_PENDING)


def downgrade() -> None:
    op.drop_index('ix_deliveries_due', table_name='deliveries')
