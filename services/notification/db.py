"""notification's tables: one delivery per (cause event, recipient, channel), plus the shared
outbox and processed-event tables. Addresses are never stored: they are fetched at send time."""

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal_column,
    text,
)

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
    # WhatsApp: until when a free-form text may be sent (the person wrote to us); else template.
    Column("reply_window_until", UTCDateTime),
    # The delivery (on another channel) whose failure caused this one.
    Column("fallback_of", String(36)),
    Index("ix_deliveries_pending", "status", "next_attempt_at"),
    Index("ix_deliveries_complaint", "complaint_id"),
    # The pending deliveries in lease order (DUE_ORDER below), so that a lease walks only as
    # many entries as it leases (plus those of rows sent since the last VACUUM, which an Index
    # Scan marks dead as it passes) however many complainants' deliveries wait behind the units'.
    Index("ix_deliveries_due", text("(audience <> 'unit')"), "next_attempt_at",
          postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
)

# What notification remembers of each routed complaint, for the lifecycle messages that follow
# (see domain/lifecycle.py). No personal data: contact_channels says only which kinds exist.
complaint_views = Table(
    "complaint_views",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("tracking_code", String(32), nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("unit_name", String(200), nullable=False),
    Column("category", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("confidentiality", String(16), nullable=False),
    Column("contact_channels", JSON, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("routed_seq", Integer, nullable=False),
    Column("notified_seq", Integer, nullable=False),
    Column("return_reason", Text, nullable=False),
    Column("return_seq", Integer, nullable=False),
    Column("last_inbound_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

# The order in which due deliveries are sent (handlers.lease_due): units first, then oldest.
# `audience <> 'unit'` is false (first) for a unit's delivery. Literals, not bound parameters:
# PostgreSQL uses ix_deliveries_due for a query only when its ORDER BY is the index's
# expressions and its WHERE names the index's `status = 'pending'` (SQLite: its WHERE).
PENDING = deliveries.c.status == literal_column("'pending'")
DUE_ORDER = (deliveries.c.audience != literal_column("'unit'"), deliveries.c.next_attempt_at)
