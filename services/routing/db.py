"""routing's tables: the unit registry (seeded from data/units.yaml), one routing decision per
complaint, the stage-change audit, plus the shared outbox and processed-event tables."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shared.db import BigId, UTCDateTime, outbox_table, processed_events_table

metadata = MetaData()

units = Table(
    "units",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("kecamatan_code", String(16)),
    Column("stage", String(16), nullable=False),
    Column("aliases", JSON, nullable=False, default=list),
    Column("sections", JSON, nullable=False, default=dict),
    Column("contacts", JSON, nullable=False, default=dict),
    Column("head", JSON),
    Column("updated_at", UTCDateTime, nullable=False),
)

stage_changes = Table(
    "stage_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("unit_code", String(64), nullable=False),
    Column("old_stage", String(16)),
    Column("new_stage", String(16), nullable=False),
    Column("changed_by", String(120), nullable=False),
    Column("reason", String(500)),
    Column("at", UTCDateTime, nullable=False),
)

# The primary key makes "routed exactly once" a database invariant.
decisions = Table(
    "decisions",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("tracking_code", String(32), nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("section", String(32)),
    Column("shadow_unit_code", String(64)),
    Column("category", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("confidentiality", String(16), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_decisions_unit", "unit_code", "decided_at"),
)

# The complaints routing handles: what a unit's inbox shows (never personal data: routing has
# none), the lifecycle position (status, seq) and the SLA clocks. The *_warned_at/*_breached_at
# columns are set once with a conditional UPDATE: the process whose UPDATE changed the row owns
# that escalation, so a breach is announced once across restarts and replicas.
complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("tracking_code", String(32), nullable=False),
    Column("unit_code", String(64), nullable=False),
    Column("shadow_unit_code", String(64)),
    Column("section", String(32)),
    Column("rule", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("category", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("confidentiality", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("kecamatan_code", String(16)),
    Column("desa_code", String(32)),
    Column("unit_hint", String(64)),
    Column("unit_hint_trusted", Boolean, nullable=False, default=False),
    Column("contact_channels", JSON, nullable=False, default=list),
    Column("status", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("routed_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("response_warn_at", UTCDateTime, nullable=False),
    Column("response_due_at", UTCDateTime, nullable=False),
    Column("resolution_warn_at", UTCDateTime, nullable=False),
    Column("resolution_due_at", UTCDateTime, nullable=False),
    Column("responded_at", UTCDateTime),  # first response (acknowledged): response clock stops
    Column("resolved_at", UTCDateTime),  # resolution clock stops
    Column("feedback_due_at", UTCDateTime),  # closed by the clock after this, unless reopened
    Column("closed_at", UTCDateTime),
    Column("paused_at", UTCDateTime),  # info_requested: the clocks stand still
    Column("response_warned_at", UTCDateTime),
    Column("response_breached_at", UTCDateTime),
    Column("resolution_warned_at", UTCDateTime),
    Column("resolution_breached_at", UTCDateTime),
    Column("public_response", Text),
    Column("resolution", Text),
    Column("close_reason", String(500)),
    Column("rating", Integer),
    Column("rating_comment", String(1000)),
    Index("ix_complaints_unit_status", "unit_code", "status"),
    Index("ix_complaints_shadow", "shadow_unit_code"),
    Index("ix_complaints_status_routed", "status", "routed_at"),
    Index("ix_complaints_received", "received_at"),
)

# Append-only audit trail: every action on a complaint or a unit (who, when, what, before and
# after). Nothing updates or deletes rows (on PostgreSQL a trigger refuses it).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("complaint_id", String(36)),
    Column("unit_code", String(64)),
    Column("actor", String(64), nullable=False),  # username, or "system"
    Column("actor_role", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Column("text", Text),  # note, question, answer, reason (internal notes only here)
    Column("at", UTCDateTime, nullable=False),
    Index("ix_audit_complaint", "complaint_id", "id"),
    Index("ix_audit_at", "at"),
)

# The one account store of Dumas (PTSP officers, unit staff, the desk, auditors).
accounts = Table(
    "accounts",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(120), nullable=False),
    Column("role", String(32), nullable=False),
    Column("unit_code", String(64)),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

# Evidence files of a complaint, as references learnt from complaint_received (v2) and
# complaint_attachment_added; the bytes stay in the blob store (services/routing/attachments.py).
attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("complaint_id", String(36), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("name", String(120), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    UniqueConstraint("complaint_id", "sha256", name="uq_routing_attachments_complaint_sha256"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
