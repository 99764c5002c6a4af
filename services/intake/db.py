"""intake's tables: complaints, the complainant's personal data (kept only here), the public
status history, plus the shared outbox and processed-event tables."""

from sqlalchemy import Boolean, Column, ForeignKey, Index, MetaData, String, Table, Text

from shared.db import BigId, UTCDateTime, outbox_table, processed_events_table

metadata = MetaData()

complaints = Table(
    "complaints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_code", String(32), nullable=False, unique=True),
    Column("channel", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("kecamatan_code", String(16)),
    Column("desa_code", String(16)),
    Column("unit_hint", String(64)),
    Column("unit_hint_trusted", Boolean, nullable=False, default=False),
    Column("confidentiality", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("unit_code", String(64)),
    Column("unit_name", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_complaints_created_at", "created_at"),
)

# Personal data: only intake has it; events carry `contact_channels` instead.
complainants = Table(
    "complainants",
    metadata,
    Column(
        "complaint_id", String(36), ForeignKey("complaints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(120)),
    Column("phone", String(20)),
    Column("email", String(254)),
)

status_history = Table(
    "status_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "complaint_id", String(36), ForeignKey("complaints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(32), nullable=False),
    Column("note", String(500)),
    Column("unit_code", String(64)),
    Column("unit_name", String(200)),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_status_history_complaint", "complaint_id", "at"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

__all__ = ["complainants", "complaints", "metadata", "status_history"]
