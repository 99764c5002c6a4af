"""reporting's tables: every event it has seen (the source of truth for rebuilds) and the
complaint projection the statistics are computed from."""

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table

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
    Column("unit_code", String(64)),
    Column("rule", String(64)),
    Column("received_at", UTCDateTime),
    Column("routed_at", UTCDateTime),
    Column("last_routed_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("unit_notified_at", UTCDateTime),
    Column("complainant_notified_at", UTCDateTime),
    Column("notifications_sent", Integer, nullable=False, default=0),
    Column("notifications_failed", Integer, nullable=False, default=0),
    Index("ix_complaint_facts_status", "status"),
    Index("ix_complaint_facts_unit", "unit_code"),
    Index("ix_complaint_facts_received", "received_at"),
)
