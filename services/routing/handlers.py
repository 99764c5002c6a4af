"""routing's use cases: decide where a complaint goes, record it once, announce it."""

import json
from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, select
from sqlalchemy.exc import DBAPIError

from services.routing import attachments
from services.routing.casework import SYSTEM, audit, audit_row, summary
from services.routing.db import attachments as attachments_table
from services.routing.db import audit_log, complaints, decisions, outbox, processed_events
from services.routing.domain.registry import Registry
from services.routing.domain.rules import ComplaintFacts, Decision, decide
from services.routing.domain.sla import deadlines
from shared.contracts import Event, build_event
from shared.db import UTCDateTime, dialect_insert, utcnow

CONSUMER = "routing"

__all__ = ["CONSUMER", "decision_for", "route_complaint", "route_complaints", "summary"]

# Built once and executed with parameters: no per-complaint SQL construction and cache-key work
# (docs/performance.md, "intake and routing: CPU per complaint").
_INSERT_COMPLAINT = complaints.insert()
_DECISION_STATEMENTS: dict = {}


def _insert_decision(session):
    """INSERT ... ON CONFLICT DO NOTHING into decisions, built once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _DECISION_STATEMENTS.get(dialect)
    if stmt is None:
        stmt = _DECISION_STATEMENTS[dialect] = dialect_insert(session, decisions) \
            .on_conflict_do_nothing()
    return stmt


def route_complaint(uow_factory, registry: Registry, event: Event, now: datetime | None = None,
                    calendar=None, response_days=None, resolution_days=None):
    """Decide and record the routing of a received complaint, and stage `complaint_routed`.

    Idempotent twice over: the processed-event mark, and one decision per complaint (primary
    key). Returns the Decision, or None when this complaint was already routed.
    """
    with uow_factory() as uow:
        decision = _route(uow, registry, event, now or utcnow(), calendar, response_days,
                          resolution_days)
        uow.commit()
    return decision


def route_complaints(uow_factory, registry: Registry, events: list[Event],
                     now: datetime | None = None, calendar=None, response_days=None,
                     resolution_days=None, *, prepared: bool = True) -> list[Decision | None]:
    """What routing does with received complaints (its batched consumer): `route_complaint`
    and the attachment references (`attachments.on_received`) of every event, all in ONE
    transaction, one commit. A Decision or None per event, in order. A failure rolls back the
    whole batch; the batch consumer then handles its events one at a time.

    On PostgreSQL the whole batch is one prepared statement (`_route_in_one_statement`), the
    whole transaction, sent in `UnitOfWork.autocommit`: one round trip, no BEGIN and COMMIT of
    their own (a failure leaves nothing of the batch, as a rollback did). Elsewhere, with
    `prepared` False (the process's `shared.db.prepared_statements()`, which the service reads
    once at setup), and for a batch whose `complaint_routed` events cannot all be built, one
    statement per row."""
    now = now or utcnow()
    with uow_factory() as uow:
        routed = None
        connection = uow.session.connection()
        if prepared and connection.dialect.name == "postgresql":
            routed = _route_in_one_statement(uow, registry, events, now, calendar,
                                             response_days, resolution_days)
        if routed is None:
            routed = []
            for event in events:
                routed.append(_route(uow, registry, event, now, calendar, response_days,
                                     resolution_days))
                attachments.record_in(uow, event.data["complaint_id"],
                                      event.data.get("attachments") or [],
                                      event.data.get("received_at"))
        uow.commit()
    return routed


def _decide(registry: Registry, data: dict, calendar, response_days, resolution_days):
    facts = ComplaintFacts(
        complaint_id=data["complaint_id"],
        category=data["category"],
        description=data["description"],
        kecamatan_code=data.get("kecamatan_code"),
        desa_code=data.get("desa_code"),
        unit_hint=data.get("unit_hint"),
        unit_hint_trusted=data.get("unit_hint_trusted", False),
        channel=data["channel"],
        confidentiality=data["confidentiality"],
    )
    decision: Decision = decide(facts, registry)
    clocks = deadlines(data["category"], data["received_at"], calendar, response_days,
                       resolution_days)
    return facts, decision, clocks


def _route(uow, registry: Registry, event: Event, now: datetime, calendar, response_days,
           resolution_days) -> Decision | None:
    data = event.data
    facts, decision, clocks = _decide(registry, data, calendar, response_days, resolution_days)
    if not uow.claim(CONSUMER, event.event_id):
        return None
    s = uow.session
    inserted = s.execute(_insert_decision(s), _decision_row(facts, data, decision, clocks, now)) \
        .rowcount
    if not inserted:
        # Another copy of the same complaint (a re-published event) was routed already.
        return None
    s.execute(_INSERT_COMPLAINT, _complaint_row(facts, data, decision, clocks, now))
    audit(s, **_audit_fields(facts, decision, now))
    uow.publish(_routed_event(facts, data, decision, clocks, now))
    return decision


def _decision_row(facts: ComplaintFacts, data: dict, decision: Decision, clocks: dict,
                  now: datetime) -> dict:
    return {
        "complaint_id": facts.complaint_id,
        "tracking_code": data["tracking_code"],
        "unit_code": decision.unit_code,
        "rule": decision.rule,
        "reason": decision.reason,
        "section": decision.section,
        "shadow_unit_code": decision.shadow_copy_unit_code,
        "category": facts.category,
        "channel": facts.channel,
        "confidentiality": facts.confidentiality,
        "decided_at": now,
        "due_at": clocks["response_due_at"],
    }


def _complaint_row(facts: ComplaintFacts, data: dict, decision: Decision, clocks: dict,
                   now: datetime) -> dict:
    return {
        "complaint_id": str(facts.complaint_id),
        "tracking_code": data["tracking_code"],
        "unit_code": decision.unit_code,
        "shadow_unit_code": decision.shadow_copy_unit_code,
        "section": decision.section,
        "rule": decision.rule,
        "reason": decision.reason,
        "category": facts.category,
        "channel": facts.channel,
        "confidentiality": facts.confidentiality,
        "description": facts.description,
        "kecamatan_code": facts.kecamatan_code,
        "desa_code": facts.desa_code,
        "unit_hint": facts.unit_hint,
        "unit_hint_trusted": facts.unit_hint_trusted,
        "contact_channels": list(data.get("contact_channels", [])),
        "status": "routed",
        "seq": 1,
        "received_at": data["received_at"],
        "routed_at": now,
        "updated_at": now,
        **clocks,
    }


def _audit_fields(facts: ComplaintFacts, decision: Decision, now: datetime) -> dict:
    return {"actor": SYSTEM, "role": SYSTEM, "action": "routed",
            "complaint_id": facts.complaint_id, "unit_code": decision.unit_code,
            "after": {"status": "routed", "unit_code": decision.unit_code,
                      "rule": decision.rule},
            "text": decision.reason, "at": now}


def _routed_event(facts: ComplaintFacts, data: dict, decision: Decision, clocks: dict,
                  now: datetime) -> dict:
    unit = decision.unit
    return build_event(
        "complaint_routed",
        {
            "complaint_id": facts.complaint_id,
            "tracking_code": data["tracking_code"],
            "unit_code": unit.code,
            "unit_name": unit.name,
            "unit_type": unit.type,
            "stage": unit.stage,
            "rule": decision.rule,
            "reason": decision.reason,
            "category": facts.category,
            "channel": facts.channel,
            "confidentiality": facts.confidentiality,
            "contact_channels": data.get("contact_channels", []),
            "kecamatan_code": data.get("kecamatan_code"),
            "summary": summary(facts.description, facts.confidentiality),
            "routed_at": now,
            "due_at": clocks["response_due_at"],
            "status": "routed",
            "seq": 1,
        },
        correlation_id=facts.complaint_id,
        occurred_at=now,
    )


# -- PostgreSQL: a batch of received complaints in ONE statement -------------------------------
#
# Statement by statement, routing a complaint costs a round trip each for the claim, the
# decision, the complaint, the audit entry, the outbox row and every attachment reference
# (docs/performance.md, "routing and relay: fewer round trips"). Here the rows of the whole
# batch travel as one JSON parameter and one data-modifying CTE inserts them with the same
# rules, in the unit of work's transaction:
# - `claimed`: the processed-event marks (ON CONFLICT DO NOTHING): an event seen before, or a
#   second copy of one in the batch, is not claimed (the first copy by position is);
# - `decided`: one decision per claimed event in batch order (ON CONFLICT DO NOTHING: a
#   complaint decided before, or by an earlier event of the batch, keeps its decision);
# - `routed`: the claimed event that inserted each new decision (the first of its complaint);
#   only these get the complaint row, the audit entry and `complaint_routed` in the outbox;
# - `attached`: every event's attachment references, claimed or not (ON CONFLICT DO NOTHING),
#   as `attachments.record_in` does.
# Every data-modifying part runs exactly once and to completion, whatever the final SELECT
# reads; it returns the positions of the routed events. The parameter is read ONCE, as jsonb
# (`$1::jsonb`): as json, every `->`, `->>` and json_to_record parsed the event's text again,
# eight parses per event, which made the JSON a third of the backend's CPU for the batch
# (docs/performance.md, "Session 8: routing's batch statement"). Values are typed without
# lengths in jsonb_to_record, so a too-long value fails in the INSERT of a row that is really
# inserted, as the statement-per-row path fails; JSON columns get the text SQLAlchemy's JSON
# type would send (json.dumps: None is a JSON null), a string in the payload, so jsonb keeps
# it as it is. A datetime must be timezone-aware (as UTCDateTime requires).


def _pg_type(column) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, JSON):
        return "text"  # the serialised JSON, cast in the INSERT's select list
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, Integer):
        return "bigint"
    if isinstance(kind, String):  # Text included
        return "text"
    raise TypeError(f"no PostgreSQL type for {column!r}")


def _pg_insert(table, columns: tuple[str, ...], source: str, key: str, suffix: str = "") -> str:
    """INSERT INTO table (columns) SELECT ... FROM <source>, json_to_record(<source>.v->key)."""
    names = ", ".join(f'"{c}"' for c in columns)
    kinds = ", ".join(f'"{c}" {_pg_type(table.c[c])}' for c in columns)
    values = ", ".join(f'r."{c}"::json' if isinstance(table.c[c].type, JSON) else f'r."{c}"'
                       for c in columns)
    return (f'INSERT INTO "{table.name}" ({names}) SELECT {values} FROM {source} '
            f"CROSS JOIN LATERAL jsonb_to_record({source}.v->'{key}') AS r({kinds}) "
            f"ORDER BY {source}.n{suffix}")


_DECISION_COLUMNS = ("complaint_id", "tracking_code", "unit_code", "rule", "reason", "section",
                     "shadow_unit_code", "category", "channel", "confidentiality", "decided_at",
                     "due_at")
_COMPLAINT_COLUMNS = ("complaint_id", "tracking_code", "unit_code", "shadow_unit_code",
                      "section", "rule", "reason", "category", "channel", "confidentiality",
                      "description", "kecamatan_code", "desa_code", "unit_hint",
                      "unit_hint_trusted", "contact_channels", "status", "seq", "received_at",
                      "routed_at", "updated_at", "response_warn_at", "response_due_at",
                      "resolution_warn_at", "resolution_due_at")
_AUDIT_COLUMNS = ("complaint_id", "unit_code", "actor", "actor_role", "action", "before",
                  "after", "text", "at")
_OUTBOX_COLUMNS = ("event_id", "exchange", "routing_key", "correlation_id", "body",
                   "created_at")
_ATTACHMENT_COLUMNS = ("complaint_id", "sha256", "size", "media_type", "name", "added_at")
_JSON_COLUMNS = {
    "complaint": {c for c in _COMPLAINT_COLUMNS if isinstance(complaints.c[c].type, JSON)},
    "audit": {c for c in _AUDIT_COLUMNS if isinstance(audit_log.c[c].type, JSON)},
}


def _build_pg_route() -> str:
    kinds = ", ".join(f'"{c}" {_pg_type(attachments_table.c[c])}' for c in _ATTACHMENT_COLUMNS)
    names = ", ".join(f'"{c}"' for c in _ATTACHMENT_COLUMNS)
    values = ", ".join(f'a."{c}"' for c in _ATTACHMENT_COLUMNS)
    return (
        "WITH ev AS ("
        "SELECT e.n, e.v->>'event_id' AS event_id, e.v->>'complaint_id' AS complaint_id, e.v "
        "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n)), "
        "claimed AS ("
        f'INSERT INTO "{processed_events.name}" (consumer, event_id, processed_at) '
        "SELECT $2, ev.event_id, $3 FROM ev ORDER BY ev.n "
        "ON CONFLICT DO NOTHING RETURNING event_id), "
        "fresh AS (SELECT DISTINCT ON (ev.event_id) ev.* FROM ev JOIN claimed USING (event_id) "
        "ORDER BY ev.event_id, ev.n), "
        f"decided AS ({_pg_insert(decisions, _DECISION_COLUMNS, 'fresh', 'decision')} "
        "ON CONFLICT DO NOTHING RETURNING complaint_id), "
        "routed AS (SELECT DISTINCT ON (fresh.complaint_id) fresh.n, fresh.v "
        "FROM fresh JOIN decided USING (complaint_id) ORDER BY fresh.complaint_id, fresh.n), "
        f"stored AS ({_pg_insert(complaints, _COMPLAINT_COLUMNS, 'routed', 'complaint')}), "
        f"audited AS ({_pg_insert(audit_log, _AUDIT_COLUMNS, 'routed', 'audit')}), "
        f"staged AS ({_pg_insert(outbox, _OUTBOX_COLUMNS, 'routed', 'outbox')}), "
        f'attached AS (INSERT INTO "{attachments_table.name}" ({names}) SELECT {values} '
        "FROM ev CROSS JOIN LATERAL ROWS FROM ("
        f"jsonb_to_recordset(ev.v->'attachments') AS ({kinds})) WITH ORDINALITY "
        f"AS a({names}, i) ORDER BY ev.n, a.i ON CONFLICT DO NOTHING) "
        "SELECT n FROM routed"
    )


_PG_ROUTE = _build_pg_route()
_PG_ROUTE_NAME = "routing_route_complaints"
_NO_SUCH_PREPARED_STATEMENT = "26000"  # invalid_sql_statement_name
_PG_PREPARE = f"PREPARE {_PG_ROUTE_NAME} (json, text, timestamptz) AS {_PG_ROUTE}"
_PG_EXECUTE = f"EXECUTE {_PG_ROUTE_NAME} (%(events)s, %(consumer)s, %(processed_at)s)"


def _execute_prepared(connection, params: dict):
    """`_PG_ROUTE`, PREPAREd on each database connection the first time it runs there: the
    server parses it once per connection and, after its first executions, plans it once
    (without, parsing and planning this statement cost the server more than the six
    statements it replaces). A prepared statement is session state, kept across transactions
    (also rolled-back ones); which connections have it is remembered in the pooled DBAPI
    connection's `info`, which a replaced connection does not inherit."""
    prepared = connection.connection.info.setdefault("routing_prepared", set())
    if _PG_ROUTE_NAME not in prepared:
        connection.exec_driver_sql(_PG_PREPARE)
        prepared.add(_PG_ROUTE_NAME)
    try:
        return connection.exec_driver_sql(_PG_EXECUTE, params)
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) == _NO_SUCH_PREPARED_STATEMENT:
            # The server no longer has it (its session was reset, e.g. by a pooler): this
            # transaction fails, the next one on this connection prepares it again.
            prepared.discard(_PG_ROUTE_NAME)
        raise


def _json_value(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_text(value):
    """A datetime as the text `_json_value` gives it; any other value as it is."""
    return _json_value(value) if isinstance(value, datetime) else value


def _with_json_text(row: dict, columns) -> dict:
    """`row` with its JSON columns as the text SQLAlchemy's JSON type would send."""
    return {**row, **{c: json.dumps(row[c]) for c in columns}}


def _route_in_one_statement(uow, registry: Registry, events: list[Event], now: datetime,
                            calendar, response_days, resolution_days
                            ) -> list[Decision | None] | None:
    """`route_complaints`'s rows for PostgreSQL, inserted by `_PG_ROUTE`, the transaction's
    only statement (`uow.autocommit()`; the first batch on a connection PREPAREs it first,
    session state that needs no transaction). None: a `complaint_routed` could not be built,
    so the batch takes the statement-per-row path (nothing was sent yet), which raises that
    error only for an event it really routes (a redelivery is answered None)."""
    decided, payload = [], []
    # The rows' datetimes go into the payload as the text json.dumps's `default` (_json_value)
    # would make of them, formatted once each here (`now` once per batch): a `default` call per
    # datetime occurrence, eleven per complaint, cost more than the rest of the encoding.
    now_text = _json_text(now)
    for event in events:
        data = event.data
        facts, decision, clocks = _decide(registry, data, calendar, response_days,
                                          resolution_days)
        try:
            routed_event = _routed_event(facts, data, decision, clocks, now)
        except Exception:
            return None
        decided.append(decision)
        clocks = {name: _json_text(at) for name, at in clocks.items()}
        row_data = {**data, "received_at": _json_text(data["received_at"])}
        payload.append({
            "event_id": event.event_id,
            "complaint_id": str(facts.complaint_id),
            "decision": _decision_row(facts, row_data, decision, clocks, now_text),
            "complaint": _with_json_text(
                _complaint_row(facts, row_data, decision, clocks, now_text),
                _JSON_COLUMNS["complaint"]),
            "audit": _with_json_text(audit_row(**_audit_fields(facts, decision, now_text)),
                                     _JSON_COLUMNS["audit"]),
            # Counted as staged even when the event turns out to be a redelivery: the relay is
            # then woken once for nothing.
            "outbox": uow.outbox_row(routed_event),
            "attachments": attachments.rows(data["complaint_id"], data.get("attachments") or [],
                                            data.get("received_at")),
        })
    params = {
        "events": json.dumps(payload, default=_json_value, ensure_ascii=False,
                             separators=(",", ":")),
        "consumer": CONSUMER,
        "processed_at": utcnow(),
    }
    with uow.autocommit() as statement:
        rows = _execute_prepared(statement, params).all()
    routed = {n - 1 for (n,) in rows}
    return [d if i in routed else None for i, d in enumerate(decided)]


def decision_for(session, complaint_id: str) -> dict | None:
    row = session.execute(select(decisions).where(decisions.c.complaint_id == complaint_id)).first()
    return dict(row._mapping) if row else None
