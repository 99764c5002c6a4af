"""routed_seq: the unit assignment follows the latest complaint_routed, whatever the order in
which lifecycle events arrive

Revision ID: intake_routed_seq
Revises: intake_attachments
Create Date: 2026-11-28 05:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'intake_routed_seq'
down_revision = 'intake_attachments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('complaints') as batch:
        batch.add_column(sa.Column('routed_seq', sa.Integer(), nullable=False,
                                   server_default=sa.text('0')))
    # Complaints routed before this column: their unit came from the routing applied then.
    op.execute("UPDATE complaints SET routed_seq = last_seq WHERE unit_code IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('complaints') as batch:
        batch.drop_column('routed_seq')
