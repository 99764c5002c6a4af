"""routing's tables: the unit registry (seeded from data/units.yaml), one routing decision per
complaint, the stage-change audit, plus the shared outbox and processed-event tables."""

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, Text

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

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
