"""roll-ups of the daily cube (rollup_days, rollup_months, rollup_durations)

Statistics with no filter, one filter, or a combination of channel / category /
confidentiality read these instead of daily_stats, which holds about one
row per complaint at a province's scale. They are filled from daily_stats here, so an upgraded
database answers the same as before without a rebuild.

Revision ID: reporting_rollups
Revises: reporting_aggregates
Create Date: 2026-11-28 01:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'reporting_rollups'
down_revision = 'reporting_aggregates'
branch_labels = None
depends_on = None

COUNTERS = (
    "complaints", "st_received", "st_routed", "st_acknowledged", "st_in_progress",
    "st_info_requested", "st_responded", "st_resolved", "st_closed", "sla_met", "sla_missed",
    "sla_warned", "returned", "rerouted", "reopened", "rated", "rating_sum", "rating_1",
    "rating_2", "rating_3", "rating_4", "rating_5", "notifications_sent", "notifications_failed",
)
UNIT_SLA = ("complaints", "sla_met", "sla_missed", "sla_warned")
DIMENSIONS = ("unit_code", "kecamatan_code", "channel", "category", "confidentiality")
FILTER_SETS = (
    (), *((d,) for d in DIMENSIONS),
    ("channel", "confidentiality"), ("channel", "category"), ("category", "confidentiality"),
    ("channel", "category", "confidentiality"),
)


def _filter():
    return (sa.Column('filter_dim', sa.String(length=40), nullable=False),
            sa.Column('filter_value', sa.String(length=64), nullable=False))


def upgrade() -> None:
    op.create_table(
        'rollup_days', *_filter(),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('shard', sa.SmallInteger(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in COUNTERS),
        sa.PrimaryKeyConstraint('filter_dim', 'filter_value', 'day', 'shard',
                                name='pk_rollup_days'),
    )
    op.create_table(
        'rollup_months', *_filter(),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('dim', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=64), nullable=False),
        sa.Column('shard', sa.SmallInteger(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in UNIT_SLA),
        sa.PrimaryKeyConstraint('filter_dim', 'filter_value', 'month', 'dim', 'value', 'shard',
                                name='pk_rollup_months'),
    )
    op.create_table(
        'rollup_durations', *_filter(),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('measure', sa.String(length=16), nullable=False),
        sa.Column('working_days', sa.Integer(), nullable=False),
        sa.Column('shard', sa.SmallInteger(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('filter_dim', 'filter_value', 'month', 'measure',
                                'working_days', 'shard', name='pk_rollup_durations'),
    )
    # Filters the roll-ups do not cover involve a unit (ix_daily_stats_unit_day) or a kecamatan.
    for table in ('daily_stats', 'duration_stats'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_kecamatan_day', ['kecamatan_code', 'day'],
                                  unique=False)
    from services.reporting.rollups import refresh

    refresh(op.get_bind(), COUNTERS, UNIT_SLA, FILTER_SETS, DIMENSIONS)


def downgrade() -> None:
    for table in ('duration_stats', 'daily_stats'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_kecamatan_day')
    op.drop_table('rollup_durations')
    op.drop_table('rollup_months')
    op.drop_table('rollup_days')
