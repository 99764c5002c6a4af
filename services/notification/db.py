"""notification's tables: one delivery per (cause event, recipient, channel), plus the shared
outbox and processed-event tables. Addresses are never stored: they are fetched at send time."""

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime, outbox_table, processed_events_table

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    # Deterministic id (uuid5 of cause event, audience, recipient, channel): the idempotency key.
    Column("id", String(36), primary_key=True),
    Column("cause_event_id", String(36), nullable=False),
    Column("complaint_id", String(36), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("recipient", String(80), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("template", String(64), nullable=False),
    Column("context", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("provider", String(32)),
    Column("provider_message_id", String(200)),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Index("ix_deliveries_pending", "status", "next_attempt_at"),
    Index("ix_deliveries_complaint", "complaint_id"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
