"""reporting's tables: every event it has seen (the source of truth for rebuilds), the complaint
projection, and the counter tables the statistics read (never the complaints themselves)."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)

from services.reporting.domain.aggregates import COUNTER_COLUMNS, UNIT_SLA_COLUMNS
from shared.db import UTCDateTime

metadata = MetaData()

# Every event, once (the primary key is the idempotency check).
events = Table(
    "events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("producer", String(32), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_events_occurred", "occurred_at"),
)

complaints = Table(
    "complaint_facts",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("tracking_code", String(32)),
    Column("channel", String(32)),
    Column("category", String(32)),
    Column("kecamatan_code", String(16)),
    Column("confidentiality", String(16)),
    Column("status", String(32), nullable=False),
    Column("status_seq", Integer, nullable=False, default=0, server_default="0"),
    Column("unit_code", String(64)),
    Column("rule", String(64)),
    Column("received_at", UTCDateTime),
    Column("routed_at", UTCDateTime),
    Column("last_routed_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("first_response_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("unit_notified_at", UTCDateTime),
    Column("complainant_notified_at", UTCDateTime),
    Column("notifications_sent", Integer, nullable=False, default=0),
    Column("notifications_failed", Integer, nullable=False, default=0),
    Column("returned_count", Integer, nullable=False, default=0, server_default="0"),
    Column("reroute_count", Integer, nullable=False, default=0, server_default="0"),
    Column("reopened_count", Integer, nullable=False, default=0, server_default="0"),
    Column("info_added_count", Integer, nullable=False, default=0, server_default="0"),
    Column("sla_warned", Boolean, nullable=False, default=False, server_default="0"),
    Column("sla_breached", Boolean, nullable=False, default=False, server_default="0"),
    Column("rating", SmallInteger),
    Column("rated_at", UTCDateTime),
    Index("ix_complaint_facts_status", "status"),
    Index("ix_complaint_facts_unit", "unit_code"),
    Index("ix_complaint_facts_received", "received_at"),
    # The staff list of open complaints: per unit, oldest first.
    Index("ix_complaint_facts_unit_status_received", "unit_code", "status", "received_at"),
)

_KEY = (
    Column("day", Date, nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("kecamatan_code", String(16), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("confidentiality", String(16), nullable=False),
)
KEY_COLUMNS = tuple(c.name for c in _KEY)

# One row per (day received, unit, kecamatan, channel, category, confidentiality): counters.
daily_stats = Table(
    "daily_stats",
    metadata,
    *(c.copy() for c in _KEY),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNTER_COLUMNS),
    PrimaryKeyConstraint(*KEY_COLUMNS, name="pk_daily_stats"),
    Index("ix_daily_stats_unit_day", "unit_code", "day"),
    Index("ix_daily_stats_kecamatan_day", "kecamatan_code", "day"),
)

# Histogram of working days (to first response, to resolution) under the same key.
duration_stats = Table(
    "duration_stats",
    metadata,
    *(c.copy() for c in _KEY),
    Column("measure", String(16), nullable=False),
    Column("working_days", Integer, nullable=False),
    Column("n", Integer, nullable=False, default=0),
    PrimaryKeyConstraint(*KEY_COLUMNS, "measure", "working_days", name="pk_duration_stats"),
    Index("ix_duration_stats_unit_day", "unit_code", "day"),
    Index("ix_duration_stats_kecamatan_day", "kecamatan_code", "day"),
)

# Roll-ups of the daily cube (services/reporting/domain/aggregates.py, "roll-ups"): questions
# whose filters are in FILTER_SETS read these instead of the cube. filter_dim "" = no filter;
# `shard` is a contention stripe (readers sum over it), not a partition of complaints.
_FILTER = (
    Column("filter_dim", String(40), nullable=False),
    Column("filter_value", String(64), nullable=False),
)

rollup_days = Table(
    "rollup_days",
    metadata,
    *(c.copy() for c in _FILTER),
    Column("day", Date, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNTER_COLUMNS),
    PrimaryKeyConstraint("filter_dim", "filter_value", "day", "shard", name="pk_rollup_days"),
)

rollup_months = Table(
    "rollup_months",
    metadata,
    *(c.copy() for c in _FILTER),
    Column("month", Date, nullable=False),
    Column("dim", String(16), nullable=False),
    Column("value", String(64), nullable=False),
    Column("shard", SmallInteger, nullable=False),
    *(Column(name, Integer, nullable=False, default=0) for name in UNIT_SLA_COLUMNS),
    PrimaryKeyConstraint("filter_dim", "filter_value", "month", "dim", "value", "shard",
                         name="pk_rollup_months"),
)

rollup_durations = Table(
    "rollup_durations",
    metadata,
    *(c.copy() for c in _FILTER),
    Column("month", Date, nullable=False),
    Column("measure", String(16), nullable=False),
    Column("working_days", Integer, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("n", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("filter_dim", "filter_value", "month", "measure", "working_days",
                         "shard", name="pk_rollup_durations"),
)
ROLLUP_KEYS = {
    "rollup_days": ("filter_dim", "filter_value", "day", "shard"),
    "rollup_months": ("filter_dim", "filter_value", "month", "dim", "value", "shard"),
    "rollup_durations": ("filter_dim", "filter_value", "month", "measure", "working_days",
                         "shard"),
}
