"""intake's tables: complaints, the complainant's personal data (kept only here), the public
status history, plus the shared outbox and processed-event tables."""

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

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
    # Highest lifecycle `seq` applied (routing numbers each complaint's transitions; 0: none).
    Column("last_seq", Integer, nullable=False, default=0, server_default=text("0")),
    Column("due_at", UTCDateTime),  # SLA due time from complaint_routed
    # `seq` of the complaint_routed that set unit_code/unit_name/due_at: the unit follows the
    # latest routing even when a later transition (responded, ...) arrived before it.
    Column("routed_seq", Integer, nullable=False, default=0, server_default=text("0")),
    Column("officer_username", String(64)),  # PTSP desk entries: who typed it in
    Column("qr_location", String(64)),  # QR poster entries: where the poster hangs
    # Keyed fingerprint of the contact (services.intake.domain.sealing) for duplicate detection
    # and WhatsApp follow-ups; None for anonymous complaints and complaints without contact.
    Column("contact_key", String(64)),
    Column("rating", Integer),
    Column("reopen_requested_seq", Integer),
    Index("ix_complaints_created_at", "created_at"),
    Index("ix_complaints_contact_key", "contact_key", "created_at"),
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
    # Confidential complaints: name/phone/email are NULL and this holds them encrypted.
    Column("sealed", Text),
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
    Column("seq", Integer, nullable=False, default=0, server_default=text("0")),
    Index("ix_status_history_complaint", "complaint_id", "at"),
)

# What the tracking page shows besides statuses: the unit's questions and public answers, the
# complainant's additions, ratings, reopen requests, linked duplicate submissions.
complaint_messages = Table(
    "complaint_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "complaint_id", String(36), ForeignKey("complaints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # question | response | resolution | closed | info_added | rating | reopen | duplicate
    Column("kind", String(16), nullable=False),
    Column("author", String(16), nullable=False),  # unit | complainant
    Column("body", Text, nullable=False),
    Column("channel", String(32)),
    Column("seq", Integer),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_complaint_messages_complaint", "complaint_id", "at"),
)

# Requests already answered, so a retried request gets the same answer and never makes a second
# complaint: Idempotency-Key per client (scope), WhatsApp message ids, AMQP message ids.
idempotency = Table(
    "idempotency",
    metadata,
    Column("scope", String(80), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("complaint_id", String(36)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_created_at", "created_at"),
)

# Evidence files of a complaint: references to the blob store (shared/storage.py), never bytes.
# One row per (complaint, content): the same file sent twice is attached once.
attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "complaint_id", String(36), ForeignKey("complaints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("name", String(120), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("complaint_id", "sha256", name="uq_attachments_complaint_sha256"),
    Index("ix_attachments_sha256", "sha256"),
)

# WhatsApp media to download through the Cloud API, one row per message id (so a webhook
# delivered twice queues it once). The webhook answers at once; intake's media timer downloads.
media_downloads = Table(
    "media_downloads",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column(
        "complaint_id", String(36), ForeignKey("complaints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("media_id", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # image | document | audio | video
    Column("filename", String(200)),
    Column("state", String(16), nullable=False),  # pending | running | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", UTCDateTime, nullable=False),
    Column("last_error", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_media_downloads_due", "state", "next_at"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

__all__ = [
    "attachments",
    "complainants",
    "complaint_messages",
    "complaints",
    "idempotency",
    "media_downloads",
    "metadata",
    "status_history",
]
