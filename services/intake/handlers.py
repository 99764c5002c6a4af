"""intake's use cases, called by the nameko adapter in service.py (and by tests) with a unit of
work. No nameko here: these functions take plain data and a UnitOfWork."""

import hashlib
import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from services.intake.db import (
    attachments as attachments_table,
)
from services.intake.db import (
    complainants,
    complaint_messages,
    complaints,
    idempotency,
    outbox,
    processed_events,
    status_history,
)
from services.intake.domain import duplicates
from services.intake.domain.complaint import (
    can_answer,
    can_rate,
    can_reopen,
    public_view,
    seq_applies,
)
from services.intake.domain.sealing import PersonalDataBox
from services.intake.domain.tracking import new_tracking_code, normalize_tracking_code
from services.intake.domain.validation import contact_channels
from shared.contracts import Event, build_event
from shared.db import (
    PreparedStatement,
    PreparedStatementLost,
    UnitOfWork,
    autocommit,
    dialect_insert,
    prepare_on,
    prepared_statements_lost,
)

CONSUMER = "intake"
CLOSED = ("resolved", "closed")

# Extra text each lifecycle event carries, stored for the tracking page.
EVENT_MESSAGE_FIELD = {
    "complaint_info_requested": ("question", "question"),
    "complaint_responded": ("response", "response"),
    "complaint_resolved": ("resolution", "resolution"),
    "complaint_closed": ("closed", "reason"),
}


@dataclass(frozen=True)
class Accepted:
    complaint_id: str
    tracking_code: str
    status: str
    received_at: datetime
    contact_channels: list[str]
    duplicate: bool = False  # True: linked to an earlier complaint, nothing new was opened


@dataclass(frozen=True)
class IdempotencyRecord:
    """Store the answer to a request under (scope, key) in the same transaction as its effect."""

    scope: str
    key: str
    request_hash: str
    render: Callable[[Accepted], tuple[int, dict]]


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status_code: int
    body: dict
    complaint_id: str | None


class IdempotencyRace(RuntimeError):
    """Another request with the same key committed first; read its answer."""


class UnknownComplaint(LookupError):
    pass


class ActionRefused(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# -- statements of the complaint path --------------------------------------------------------
# Built once and executed with parameters: no per-call SQL construction and cache-key work
# (that was most of intake's client CPU per complaint; docs/performance.md, "intake and
# routing: CPU per complaint"). `insert()` without `.values()` takes its columns from the
# parameters, so one statement serves every set of columns (SQLAlchemy caches each compiled).

_INSERT_COMPLAINT = complaints.insert()
_INSERT_COMPLAINANT = complainants.insert()
_INSERT_HISTORY = status_history.insert()
_INSERT_MESSAGE = complaint_messages.insert()
# SET takes the parameters named after columns; the row is named by `b_id`.
_UPDATE_COMPLAINT = update(complaints).where(complaints.c.id == bindparam("b_id"))
# `status <> 'resolved' AND status <> 'closed'` rather than NOT IN (...): a literal list is an
# "expanding" parameter SQLAlchemy rewrites into the SQL at every execution.
_EARLIER = (
    select(complaints.c.id, complaints.c.description, complaints.c.created_at,
           complaints.c.tracking_code, complaints.c.status)
    .where(
        complaints.c.contact_key == bindparam("contact_key"),
        complaints.c.created_at >= bindparam("since", type_=complaints.c.created_at.type),
        *(complaints.c.status != literal(status) for status in CLOSED),
    )
    .order_by(complaints.c.created_at.desc())
    .limit(50)
)
_CONTACT = (
    select(complainants, complaints.c.channel, complaints.c.confidentiality)
    .join(complaints, complaints.c.id == complainants.c.complaint_id)
    .where(complainants.c.complaint_id == bindparam("complaint_id"))
)
_STORED_ANSWER = select(idempotency).where(idempotency.c.scope == bindparam("scope"),
                                           idempotency.c.key == bindparam("key"))
_DIALECT_STATEMENTS: dict = {}


def _on_conflict_do_nothing(session, table):
    """INSERT ... ON CONFLICT DO NOTHING into `table`, built once per dialect."""
    key = (session.get_bind().dialect.name, table)
    stmt = _DIALECT_STATEMENTS.get(key)
    if stmt is None:
        stmt = _DIALECT_STATEMENTS[key] = dialect_insert(session, table).on_conflict_do_nothing()
    return stmt


def request_hash(payload) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


# -- idempotency ------------------------------------------------------------------------------


def _lone_read(session):
    """Context manager: the connection for a read that is a fresh session's only statement,
    in `shared.db.autocommit` (on PostgreSQL one round trip: no BEGIN before it and no ROLLBACK
    when the session closes); on a session that has begun its transaction, that transaction."""
    if session.in_transaction():
        return nullcontext(session.connection())
    return autocommit(session)


def stored_answer(session, scope: str, key: str) -> StoredAnswer | None:
    """The answer stored under (scope, key), or None. On a fresh session the SELECT is the
    whole transaction (`_lone_read`)."""
    with _lone_read(session) as conn:
        row = conn.execute(_STORED_ANSWER, {"scope": scope, "key": key}).first()
    if row is None:
        return None
    return StoredAnswer(row.request_hash, row.status_code, json.loads(row.body), row.complaint_id)


def _remember_row(scope, key, req_hash, status_code, body, complaint_id, now) -> dict:
    return {
        "scope": scope, "key": key, "request_hash": req_hash, "status_code": status_code,
        "body": json.dumps(body, ensure_ascii=False, default=str), "complaint_id": complaint_id,
        "created_at": now,
    }


def _remember(uow: UnitOfWork, scope, key, req_hash, status_code, body, complaint_id, now):
    params = _remember_row(scope, key, req_hash, status_code, body, complaint_id, now)
    stmt = _on_conflict_do_nothing(uow.session, idempotency)
    if uow.session.execute(stmt, params).rowcount != 1:
        raise IdempotencyRace(f"{scope}/{key}")


def remember_outcome(uow_factory, scope: str, key: str, status_code: int, body: dict,
                     now: datetime | None = None) -> bool:
    """Record an answer that made no complaint (a WhatsApp status, a refused message).
    False when it was recorded already."""
    with uow_factory() as uow:
        try:
            _remember(uow, scope, key, "-", status_code, body, None, now or datetime.now(UTC))
        except IdempotencyRace:
            return False
        uow.commit()
    return True


# -- submitting -------------------------------------------------------------------------------


def submit_complaint(
    uow_factory,
    clean: dict,
    *,
    box: PersonalDataBox,
    unit_hint_trusted: bool = False,
    officer: str | None = None,
    qr_location: str | None = None,
    idempotent: IdempotencyRecord | None = None,
    now: datetime | None = None,
    attachments: list[dict] | None = None,
    on_stored: Callable | None = None,
    prepared: bool = False,
) -> Accepted:
    """Store a validated complaint, its complainant and a `complaint_received` event, atomically.

    The same contact with a near-identical text within 7 days is linked to the earlier complaint
    instead (``Accepted.duplicate``). A tracking-code collision (about 1 in 10^15 per pair) is
    retried with a fresh code. Raises IdempotencyRace when ``idempotent`` lost a race.
    ``attachments``: references (services.intake.attachments) to files already in the blob
    store; they are recorded in the same transaction as the complaint. ``on_stored(uow,
    complaint_id, now)`` adds more writes to that transaction (a queued WhatsApp download).
    ``prepared``: on PostgreSQL, the inserts with their duplicate check go as a statement
    PREPAREd on the connection (`_insert_in_one_round_trip`); the service passes its process's
    `shared.db.prepared_statements()`.
    """
    attachments = attachments or []
    now = now or datetime.now(UTC)
    if now.tzinfo is None:  # as UTCDateTime refuses it (the PostgreSQL path binds it directly)
        raise ValueError("naive datetime given as a complaint's time")
    contacts = contact_channels(clean)
    fields = _complaint_fields(clean, unit_hint_trusted)
    anonymous = clean["confidentiality"] == "anonymous"
    contact_key = None if anonymous else box.fingerprint(clean.get("complainant"))
    # One transaction for the duplicate check and what it decides (link, or a new complaint):
    # the check used to run in a read transaction of its own (one BEGIN ... ROLLBACK more).
    # A tracking-code collision rolls the attempt back and tries again with a fresh code.
    since = now - duplicates.WINDOW
    for _attempt in range(5):
        with uow_factory() as uow:
            connection = uow.session.connection()
            on_postgresql = connection.dialect.name == "postgresql"
            if contact_key and not on_postgresql:
                earlier = _find_duplicate(uow, contact_key, clean["description"], now)
                if earlier is not None:
                    return _link_duplicate(uow, earlier, clean, idempotent, now, attachments,
                                           on_stored)
            complaint_id = str(uuid.uuid4())
            code = new_tracking_code()
            accepted = Accepted(complaint_id, code, "received", now, contacts)
            event = build_event(
                "complaint_received",
                {
                    "complaint_id": complaint_id,
                    "tracking_code": code,
                    **fields,
                    "contact_channels": contacts,
                    "received_at": now,
                    "attachments": [public_ref(a) for a in attachments],
                },
                correlation_id=complaint_id,
                occurred_at=now,
            )
            answer = idempotent.render(accepted) if idempotent is not None else None
            try:
                rows = _new_complaint_rows(
                    _complaint_row(complaint_id, code, fields, now, contact_key=contact_key,
                                   officer=officer, qr_location=qr_location),
                    _complainant_values(clean, box))
                if on_postgresql:
                    rows.append((outbox, uow.outbox_row(event)))
                    if idempotent is not None:
                        rows.append((idempotency, _remember_row(
                            idempotent.scope, idempotent.key, idempotent.request_hash, *answer,
                            complaint_id, now)))
                    # The duplicate check rides with the inserts: they apply only if this
                    # contact has no open complaint in the window (nearly always). Otherwise
                    # nothing was written; the candidates are read and compared as on SQLite.
                    # Without attachments or `on_stored` writes, that one statement is the
                    # whole transaction: sent in UnitOfWork.autocommit, no BEGIN and COMMIT
                    # round trips of their own.
                    alone = not attachments and on_stored is None
                    with (uow.autocommit() if alone else nullcontext(connection)) as statement:
                        inserted = _insert_in_one_round_trip(statement, rows,
                                                             contact_key and since, prepared)
                    if not inserted:  # nothing written: the rest is an ordinary transaction
                        earlier = _find_duplicate(uow, contact_key, clean["description"], now)
                        if earlier is not None:
                            return _link_duplicate(uow, earlier, clean, idempotent, now,
                                                   attachments, on_stored)
                        _insert_in_one_round_trip(connection, rows, None)
                else:
                    for table, values in rows:
                        connection.execute(_INSERTS[table], values)
                    uow.publish(event)
                    if idempotent is not None:
                        _remember(uow, idempotent.scope, idempotent.key,
                                  idempotent.request_hash, *answer, complaint_id, now)
                for ref in attachments:
                    record_attachment(uow, complaint_id, ref, clean["channel"], now)
                if on_stored is not None:
                    on_stored(uow, complaint_id, now)
                uow.commit()
            except (IntegrityError, PreparedStatementLost):
                continue
        return accepted
    raise RuntimeError("could not allocate a unique tracking code")


def _complaint_fields(clean: dict, unit_hint_trusted: bool) -> dict:
    """What the complaint row and its complaint_received event both say about the complaint,
    under the names both use."""
    return {
        "channel": clean["channel"],
        "category": clean["category"],
        "description": clean["description"],
        "kecamatan_code": clean.get("kecamatan_code"),
        "desa_code": clean.get("desa_code"),
        "unit_hint": clean.get("unit_code"),
        "unit_hint_trusted": unit_hint_trusted,
        "confidentiality": clean["confidentiality"],
    }


def _find_duplicate(uow: UnitOfWork, contact_key: str, description: str, now: datetime):
    """The earlier complaint (a row of `_EARLIER`) this one duplicates, or None."""
    # The submit path's statements run on the transaction's Core connection: the ORM's
    # Session.execute adds ~30 % client CPU per statement and nothing here uses it.
    rows = uow.session.connection().execute(
        _EARLIER, {"contact_key": contact_key, "since": now - duplicates.WINDOW}
    ).all()
    found = duplicates.find_duplicate(
        description, [(r.id, r.description, r.created_at) for r in rows], now
    )
    return None if found is None else next(r for r in rows if r.id == found)


def _link_duplicate(uow: UnitOfWork, row, clean, idempotent, now,
                    attachments=(), on_stored=None) -> Accepted:
    """Link a resubmission to the earlier complaint `row`, in the caller's transaction."""
    complaint_id = row.id
    accepted = Accepted(
        complaint_id, row.tracking_code, row.status, row.created_at,
        contact_channels(clean), duplicate=True,
    )
    uow.session.execute(_INSERT_MESSAGE, {
        "complaint_id": complaint_id, "kind": "duplicate", "author": "complainant",
        "body": "Pengaduan yang sama dikirim ulang dan digabungkan dengan pengaduan ini.",
        "channel": clean["channel"], "at": now,
    })
    for ref in attachments:
        if record_attachment(uow, complaint_id, ref, clean["channel"], now):
            uow.publish(attachment_added_event(complaint_id, row.tracking_code, ref,
                                               clean["channel"], now))
    if on_stored is not None:
        on_stored(uow, complaint_id, now)
    if idempotent is not None:
        status_code, body = idempotent.render(accepted)
        _remember(uow, idempotent.scope, idempotent.key, idempotent.request_hash,
                  status_code, body, complaint_id, now)
    uow.commit()
    return accepted


def _complaint_row(complaint_id, code, fields, now, *, contact_key, officer,
                   qr_location) -> dict:
    """The complaint row (`fields`: `_complaint_fields`)."""
    return {
        "id": complaint_id,
        "tracking_code": code,
        **fields,
        "status": "received",
        "created_at": now,
        "updated_at": now,
        "last_seq": 0,
        "contact_key": contact_key,
        "officer_username": officer,
        "qr_location": qr_location,
    }


def _complainant_values(clean: dict, box: PersonalDataBox) -> dict | None:
    """The complainant row's personal data (sealed when confidential); None: no row."""
    person = clean.get("complainant")
    if not person or clean["confidentiality"] == "anonymous":
        return None
    values = {"name": person.get("name"), "phone": person.get("phone"),
              "email": person.get("email")}
    if clean["confidentiality"] == "confidential":
        values = {"name": None, "phone": None, "email": None, "sealed": box.seal(values)}
    return values


def _new_complaint_rows(row: dict, person: dict | None) -> list[tuple]:
    """(table, values) of a new complaint: the row, its complainant, its first history entry.
    Both dialects insert these same dicts (SQLAlchemy's insert on SQLite, `_pg_insert` on
    PostgreSQL), so a value set here reaches both."""
    rows = [(complaints, row)]
    if person is not None:
        rows.append((complainants, {"complaint_id": row["id"], **person}))
    rows.append((status_history, {"complaint_id": row["id"], "status": "received",
                                  "at": row["created_at"], "seq": 0}))
    return rows


_INSERTS = {complaints: _INSERT_COMPLAINT, complainants: _INSERT_COMPLAINANT,
            status_history: _INSERT_HISTORY}


# PostgreSQL: the inserts of a new complaint (complaint, complainant, first history, outbox row,
# idempotency record) go in ONE round trip instead of up to five (each round trip costs the
# service an eventlet wait and the server a protocol exchange; docs/performance.md, "intake:
# fewer round trips per complaint"). With a contact, the duplicate check rides along (session
# 5): one statement, `WITH c AS (INSERT INTO complaints ... SELECT ... WHERE NOT EXISTS (an open
# complaint of this contact in the window) RETURNING 1)`, every other row selected FROM c, so
# nothing is written when the contact has one (the candidates are then read and compared as on
# SQLite). Without the check (anonymous, or after it), one multi-statement execute, which
# PostgreSQL runs as one implicit transaction. When that execute is the whole transaction (no
# attachments, no `on_stored` writes: nearly always) it runs in UnitOfWork.autocommit, so it
# is the transaction's only round trip (session 6: no BEGIN and COMMIT of their own);
# otherwise in the unit of work's transaction. Either way any error (a tracking-code
# collision) fails the execute and leaves nothing of the attempt. The idempotency insert comes
# last, a plain INSERT: a key another request took first fails the execute (unique violation
# on `idempotency`: IdempotencyRace), so nothing of the attempt is committed, in autocommit
# mode too; the execute's rowcount is the last part's, 0 only when the guard held. The guarded
# statement is PREPAREd on each connection when the service allows it
# (`shared.db.PreparedStatement`, session 8: the server no longer parses and plans it per
# complaint). Values are
# bound by psycopg2; every value is a plain str/int/bool/None or an aware datetime (what
# UTCDateTime would send: psycopg2 sends its UTC offset and the column is timestamptz).
#
# The SQL is derived from the table and the keys of the values, as `table.insert()` does it:
# the columns given, plus every column with a Python-side default (its value is sent), the
# others left to the server; a key that is no column fails. Nothing is listed by hand, so a
# column added to a row reaches both dialects.


def _pg_columns(table, keys: frozenset) -> tuple[tuple[str, ...], dict]:
    """The columns an INSERT of values with `keys` sets, and the Python-side defaults of those
    not given (what SQLAlchemy's insert would send for them)."""
    unknown = keys - set(table.c.keys())
    if unknown:
        raise ValueError(f"no such columns in {table.name}: {sorted(unknown)}")
    defaults = {}
    for column in table.c:
        if column.key in keys or column.default is None:
            continue
        if not column.default.is_scalar:
            raise ValueError(f"{table.name}.{column.key}: only scalar defaults are sent here")
        defaults[column.key] = column.default.arg
    return tuple(c.key for c in table.c if c.key in keys or c.key in defaults), defaults


_GUARD = (  # no open complaint of this contact in the duplicate window
    "NOT EXISTS (SELECT 1 FROM complaints WHERE contact_key = %(guard_contact_key)s "
    "AND created_at >= %(guard_since)s AND status <> 'resolved' AND status <> 'closed')"
)


def _pg_insert(table, columns: tuple[str, ...], tail: str | None = None) -> str:
    """INSERT of one row of parameters `<table>_<column>`; with `tail`, as a SELECT of them
    (`WHERE <guard>`, `FROM <cte>`)."""
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f"%({table.name}_{c})s" for c in columns)
    source = f"VALUES ({values})" if tail is None else f"SELECT {values} {tail}"
    return f'INSERT INTO "{table.name}" ({names}) {source}'


@dataclass(frozen=True)
class _PgSubmit:
    """The SQL of one shape of rows, with the defaults to send with each row; guarded (one
    statement), also as a prepared statement."""

    sql: str  # psycopg2's %(name)s parameters
    defaults: list[dict]
    prepared: PreparedStatement | None = None


_PG_SUBMIT: dict = {}


def _pg_submit(shape: tuple, guarded: bool) -> _PgSubmit:
    """The SQL of rows of this shape ((table, keys) ..., the complaint first) and the defaults
    to send with each row. Unguarded: one statement per row. Guarded: ONE statement, the
    complaint inserted only under `_GUARD` and every other row selected from what it inserted
    (`WITH c AS (INSERT ... RETURNING 1) ...`); its last part's rowcount says what happened."""
    found = _PG_SUBMIT.get((shape, guarded))
    if found is None:
        statements, defaults = [], []
        for table, keys in shape:
            columns, missing = _pg_columns(table, keys)
            defaults.append(missing)
            if not guarded:
                statements.append(_pg_insert(table, columns))
            elif table is complaints:
                statements.append(f"c AS ({_pg_insert(table, columns, 'WHERE ' + _GUARD)} "
                                  "RETURNING 1)")
            else:
                statements.append(_pg_insert(table, columns, "FROM c"))
        if not guarded:
            found = _PgSubmit("; ".join(statements), defaults)
        else:
            last = statements.pop() if shape[-1][0] is idempotency else "SELECT 1 FROM c"
            sql = "WITH " + ", ".join([statements[0]] + [
                f"s{n} AS ({statement})" for n, statement in enumerate(statements[1:])
            ]) + " " + last
            # one name per shape, in this process
            found = _PgSubmit(sql, defaults,
                              PreparedStatement(f"intake_submit_{len(_PG_SUBMIT)}", sql))
        _PG_SUBMIT[shape, guarded] = found
    return found


def _insert_in_one_round_trip(connection, rows: list[tuple], since: datetime | None,
                              prepared: bool = False) -> bool:
    """Insert `rows` ((table, values) ..., the complaint first) in one round trip. With `since`,
    only if the complaint's contact has no open complaint since then: False when it has (and
    nothing was written); `prepared`: that statement PREPAREd (`shared.db.PreparedStatement`:
    the server no longer parses and plans it per complaint; sent as text that was over a third
    of the server's CPU for it, docs/performance.md "Session 8: intake's statements prepared").
    Raises
    IdempotencyRace when the idempotency record (last) was taken: the execute failed, nothing
    of it was written."""
    submit = _pg_submit(tuple((t, frozenset(v)) for t, v in rows), since is not None)
    params = {}
    for (table, values), missing in zip(rows, submit.defaults, strict=True):
        name = table.name
        params.update({f"{name}_{k}": v for k, v in missing.items()})
        params.update({f"{name}_{k}": v for k, v in values.items()})
    if since is not None:
        params.update(guard_contact_key=params["complaints_contact_key"], guard_since=since)
    try:
        if prepared and submit.prepared is not None:
            prepare_on(connection, submit.prepared)
            with prepared_statements_lost(connection):
                result = connection.exec_driver_sql(submit.prepared.execute, params)
        else:
            result = connection.exec_driver_sql(submit.sql, params)
        return result.rowcount == 1  # 0: the guard held
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "table_name", None) == idempotency.name:
            raise IdempotencyRace(
                f"{params['idempotency_scope']}/{params['idempotency_key']}") from None
        raise


# -- reading ----------------------------------------------------------------------------------


def _by_code(session, user_code: str):
    code = normalize_tracking_code(user_code)
    if code is None:
        return None
    return session.execute(select(complaints).where(complaints.c.tracking_code == code)).first()


def find_public(session, user_code: str) -> dict | None:
    """The public view for a tracking code typed by a person (any case, dashes optional)."""
    row = _by_code(session, user_code)
    if row is None:
        return None
    return public_view(row._mapping, _history(session, row.id))


def _history(session, complaint_id):
    history = session.execute(
        select(status_history.c.status, status_history.c.at, status_history.c.seq)
        .where(status_history.c.complaint_id == complaint_id)
        .order_by(status_history.c.seq, status_history.c.at, status_history.c.id)
    ).all()
    return [{"status": h.status, "occurred_at": h.at, "seq": h.seq} for h in history]


def tracking_page(session, user_code: str) -> dict | None:
    """Everything the tracking page shows: the public view, the unit's questions and public
    answers, the complainant's additions, and which actions are open."""
    row = _by_code(session, user_code)
    if row is None:
        return None
    view = public_view(row._mapping, _history(session, row.id))
    messages = session.execute(
        select(complaint_messages.c.kind, complaint_messages.c.author, complaint_messages.c.body,
               complaint_messages.c.at)
        .where(complaint_messages.c.complaint_id == row.id)
        .order_by(complaint_messages.c.at, complaint_messages.c.id)
    ).all()
    view["messages"] = [
        {"kind": m.kind, "author": m.author, "body": m.body, "at": m.at} for m in messages
    ]
    view["can_answer"] = can_answer(row.status)
    view["can_rate"] = can_rate(row.status, row.rating)
    view["can_reopen"] = can_reopen(row.status, row.last_seq, row.reopen_requested_seq)
    view["rating"] = row.rating
    view["received_at"] = row.created_at
    view["due_at"] = row.due_at
    view["channel"] = row.channel
    view["complaint_id"] = row.id
    view["attachments"] = attachments_of(session, row.id)
    return view


def contact_for(session, complaint_id: str, box: PersonalDataBox) -> dict | None:
    """The complainant's contact for notification (RPC); None for anonymous or no contact.
    On a fresh session the SELECT is the whole transaction (`_lone_read`)."""
    with _lone_read(session) as conn:
        row = conn.execute(_CONTACT, {"complaint_id": complaint_id}).first()
    return _contact_of(row, box)


_CONTACTS = (
    select(complainants, complaints.c.channel, complaints.c.confidentiality)
    .join(complaints, complaints.c.id == complainants.c.complaint_id)
    .where(complainants.c.complaint_id.in_(bindparam("complaint_ids", expanding=True)))
)
# At most this many complaints per get_contacts call (notification asks for up to 100).
CONTACTS_MAX = 500


def contacts_for(session, complaint_ids: list[str], box: PersonalDataBox
                 ) -> dict[str, dict | None]:
    """`contact_for` of several complaints in one statement: complaint id -> contact or None
    (anonymous, no contact, or unknown), for every id asked.

    The SELECT is the whole transaction: on PostgreSQL it runs in `shared.db.autocommit`, one
    round trip instead of three (psycopg2's BEGIN, the SELECT, the session's ROLLBACK), so
    `session` must not have run a statement yet (as the RPC's fresh session has not)."""
    ids = [str(c) for c in dict.fromkeys(complaint_ids)]
    if len(ids) > CONTACTS_MAX:
        raise ValueError(f"at most {CONTACTS_MAX} complaints per call")
    found = {}
    if ids:
        with autocommit(session) as conn:
            for row in conn.execute(_CONTACTS, {"complaint_ids": ids}):
                found[str(row.complaint_id)] = _contact_of(row, box)
    return {complaint_id: found.get(complaint_id) for complaint_id in ids}


def _contact_of(row, box: PersonalDataBox) -> dict | None:
    if row is None or row.confidentiality == "anonymous":
        return None
    person = {"name": row.name, "phone": row.phone, "email": row.email}
    if row.sealed:
        person = box.open(row.sealed)
    return {**person, "channel": row.channel}


def open311_requests(session, *, codes=None, service_code=None, status=None, start=None,
                     end=None, limit=50) -> list[dict]:
    """Rows for Open311 GET requests: by tracking codes, or the latest public complaints."""
    q = select(
        complaints.c.tracking_code, complaints.c.status, complaints.c.category,
        complaints.c.unit_name, complaints.c.created_at, complaints.c.updated_at,
        complaints.c.due_at, complaints.c.kecamatan_code, complaints.c.confidentiality,
    )
    if codes is not None:
        q = q.where(complaints.c.tracking_code.in_(codes))
    else:
        # Listing shows public complaints only; a tracking code finds any complaint.
        q = q.where(complaints.c.confidentiality == "public")
        if service_code:
            q = q.where(complaints.c.category == service_code)
        if status == "closed":
            q = q.where(complaints.c.status.in_(CLOSED))
        elif status == "open":
            q = q.where(complaints.c.status.not_in(CLOSED))
        if start is not None:
            q = q.where(complaints.c.created_at >= start)
        if end is not None:
            q = q.where(complaints.c.created_at <= end)
    q = q.order_by(complaints.c.created_at.desc()).limit(limit)
    return [dict(r._mapping) for r in session.execute(q).all()]


# -- lifecycle from routing -------------------------------------------------------------------


def apply_status_event(uow_factory, event: Event) -> bool:
    """Record a lifecycle event from routing (complaint_routed, _acknowledged, ...); idempotent.

    Every transition enters the history; the current status moves only when the event's `seq`
    is higher than the last applied one. Returns False for a redelivery.
    """
    return apply_status_events(uow_factory, [event])[0]


def apply_status_events(uow_factory, events: list[Event], *, prepared: bool = False
                        ) -> list[bool]:
    """`apply_status_event` for several events in ONE transaction (intake's batched
    complaint_routed consumer): one commit for the batch. An unknown complaint raises
    UnknownComplaint and rolls back the whole batch (the batch consumer then handles its events
    one at a time, and parks that one).

    The batch takes a fixed number of statements whatever its size: claim every event, lock
    every complaint, update them, add their history entries (and messages) - the events are
    applied in order in memory, so two events of one complaint in a batch end as if applied one
    after the other. On PostgreSQL (psycopg2) the whole transaction is TWO round trips, whatever
    the batch size: `BEGIN` with the claim and the lock, then the writes with `COMMIT` (a
    message-carrying event adds one). SQLite and other drivers: the claim, the lock, the
    updates and the history entries as four statements in an ordinary transaction.
    `prepared` (PostgreSQL): those statements PREPAREd once per connection (the service passes
    its process's `shared.db.prepared_statements()`); a server that lost them fails that
    attempt, which rolls back, and the next prepares them again."""
    for _attempt in range(2):
        with uow_factory() as uow:
            if uow.session.get_bind().dialect.driver == "psycopg2":
                try:
                    applied = _apply_statuses_pg(uow, events, prepared)
                except PreparedStatementLost:
                    continue
            else:
                applied = _apply_statuses(uow, uow.session.connection(), events)
            uow.commit()
        return applied
    raise RuntimeError("intake's status statements were lost twice in a row")


# A complaint's state that lifecycle events change, in the order of the PostgreSQL update below.
_STATE = ("status", "last_seq", "unit_code", "unit_name", "due_at", "routed_seq", "updated_at")
_LOCK_STATES = (
    select(complaints.c.id, *(complaints.c[c] for c in _STATE))
    .where(complaints.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(complaints.c.id)  # rows locked in one order: batches never deadlock each other
    .with_for_update()
)
_UPDATE_STATE = _UPDATE_COMPLAINT.values({c: bindparam(c) for c in _STATE})
# PostgreSQL (session 7): the transaction in TWO round trips instead of four (a batch of one)
# or five (psycopg2's BEGIN, claim, lock, write, COMMIT). The connection is in psycopg2's
# autocommit mode (UnitOfWork.autocommit) and the query strings open and close the transaction
# themselves, as notification's plan does: (1) `BEGIN`, then ONE statement that claims every
# event and, once something was claimed (the EXISTS: the lock waits for the claim, as with two
# statements), locks the batch's complaints in id order (batches never deadlock each other),
# and returns the claimed event ids with those complaints' states; the events are applied in
# memory; (2) the updates and history entries with `COMMIT`. A complaint of a claimed event
# that is not ours comes back without a row (UnknownComplaint: the block rolls the claims back
# with an explicit ROLLBACK). Nothing claimed (a redelivery): nothing locked, `COMMIT` alone.
# A complaint whose only event in the batch is a redelivery is locked too (until the COMMIT)
# but not written: locking only the claimed events' complaints (a join on the claim) cost the
# server ~12 % more per event (bench/intake_cpu_s7.py, batch 10).
_HISTORY = ("complaint_id", "status", "seq", "at", "unit_code", "unit_name")
_PG_CLAIMED_AND_LOCKED = (
    "SELECT (SELECT array_agg(event_id) FROM claimed) AS claimed, locked.* "
    "FROM (SELECT 1) AS one LEFT JOIN locked ON true"
)
_PG_LOCKED = ("locked AS (SELECT id, " + ", ".join(f'"{col}"' for col in _STATE)
              + ' FROM "complaints" ')
_PG_CLAIM_AND_LOCK = (
    'WITH claimed AS (INSERT INTO "processed_events" (consumer, event_id, processed_at) '
    "SELECT %(consumer)s, unnest(%(event_ids)s::varchar[]), %(now)s "
    "ON CONFLICT DO NOTHING RETURNING event_id), "
    + _PG_LOCKED + "WHERE id = ANY(%(complaint_ids)s::varchar[]) "
    "AND EXISTS (SELECT FROM claimed) ORDER BY id FOR UPDATE) " + _PG_CLAIMED_AND_LOCKED
)
# One event (a batch of one, as below ~10 events a second): VALUES and `id =` instead of the
# arrays (session 5's form; the first batch form of session 7 cost the server ~0.1 ms more
# per event at batch 1 in bench/hop_cpu.py).
_PG_CLAIM_AND_LOCK_ONE = (
    'WITH claimed AS (INSERT INTO "processed_events" (consumer, event_id, processed_at) '
    "VALUES (%(consumer)s, %(event_ids)s, %(now)s) ON CONFLICT DO NOTHING RETURNING event_id), "
    + _PG_LOCKED + "WHERE id = %(complaint_ids)s AND EXISTS (SELECT FROM claimed) FOR UPDATE) "
    + _PG_CLAIMED_AND_LOCKED
)
# Every complaint's update with every history entry (values as arrays: an executemany is one
# round trip per row with psycopg2).
_PG_WRITE_STATES = (
    'UPDATE "complaints" AS c SET '
    + ", ".join(f'"{col}" = v."{col}"' for col in _STATE)
    + " FROM unnest(%(id)s::varchar[], %(status)s::varchar[], %(last_seq)s::int[], "
    "%(unit_code)s::varchar[], %(unit_name)s::varchar[], %(due_at)s::timestamptz[], "
    "%(routed_seq)s::int[], %(updated_at)s::timestamptz[]) AS v(id, "
    + ", ".join(f'"{col}"' for col in _STATE)
    + ") WHERE c.id = v.id",
    'INSERT INTO "status_history" (' + ", ".join(f'"{col}"' for col in _HISTORY) + ") "
    "SELECT * FROM unnest(%(h_complaint_id)s::varchar[], %(h_status)s::varchar[], "
    "%(h_seq)s::int[], %(h_at)s::timestamptz[], %(h_unit_code)s::varchar[], "
    "%(h_unit_name)s::varchar[])",
)
# One complaint (a batch of one, as below ~10 events a second): the plain forms, which the
# server plans and runs in about half the time of the unnest join (session 5).
_PG_WRITE_STATE = (
    'UPDATE "complaints" SET ' + ", ".join(f'"{col}" = %({col})s' for col in _STATE)
    + " WHERE id = %(id)s",
    'INSERT INTO "status_history" (' + ", ".join(f'"{col}"' for col in _HISTORY) + ") VALUES ("
    + ", ".join(f"%(h_{col})s" for col in _HISTORY) + ")",
)


@dataclass(frozen=True)
class _StatusSql:
    """The query strings of `_apply_statuses_pg`: (1) `BEGIN` and the claim and lock, of a
    batch or of one event; (2) the writes of several complaints or of one, then `COMMIT`."""

    claim: str
    claim_one: str
    write: str
    write_one: str
    prepares: tuple = ()  # what the connection must have PREPAREd first


def _status_sql(prepared: bool) -> _StatusSql:
    """As text, or (session 8) as EXECUTEs of statements PREPAREd once per connection: the
    server then plans them once instead of per batch (docs/performance.md, "Session 8:
    intake's statements prepared")."""
    if not prepared:
        return _StatusSql(
            "BEGIN; " + _PG_CLAIM_AND_LOCK, "BEGIN; " + _PG_CLAIM_AND_LOCK_ONE,
            "; ".join((*_PG_WRITE_STATES, "COMMIT")), "; ".join((*_PG_WRITE_STATE, "COMMIT")))
    claim = PreparedStatement("intake_claim_and_lock", _PG_CLAIM_AND_LOCK)
    claim_one = PreparedStatement("intake_claim_and_lock_one", _PG_CLAIM_AND_LOCK_ONE)
    write = [PreparedStatement(f"intake_write_states_{n}", sql)
             for n, sql in enumerate(_PG_WRITE_STATES)]
    write_one = [PreparedStatement(f"intake_write_state_{n}", sql)
                 for n, sql in enumerate(_PG_WRITE_STATE)]
    return _StatusSql(
        "BEGIN; " + claim.execute, "BEGIN; " + claim_one.execute,
        "; ".join([*(w.execute for w in write), "COMMIT"]),
        "; ".join([*(w.execute for w in write_one), "COMMIT"]),
        (claim, claim_one, *write, *write_one))


_STATUS_SQL = {prepared: _status_sql(prepared) for prepared in (False, True)}
_CLAIMS: dict = {}


def _claimed_of(events: list[Event], claimed: set[str]) -> list[bool]:
    """Per event, whether to apply it: claimed now, and its first copy in the batch (a copy of
    an event in the same batch is a redelivery, like one in a later batch)."""
    todo = []
    for event in events:
        todo.append(event.event_id in claimed)
        claimed.discard(event.event_id)
    return todo


def _apply_statuses_pg(uow: UnitOfWork, events: list[Event], prepared: bool) -> list[bool]:
    complaint_of = {e.event_id: e.data["complaint_id"] for e in events}  # each event once
    one = len(complaint_of) == 1
    sql = _STATUS_SQL[prepared]
    with uow.autocommit() as conn, prepared_statements_lost(conn):
        prepare_on(conn, *sql.prepares)
        found = conn.exec_driver_sql(sql.claim_one if one else sql.claim, {
            "consumer": CONSUMER, "now": datetime.now(UTC),
            "event_ids": next(iter(complaint_of)) if one else list(complaint_of),
            "complaint_ids": next(iter(complaint_of.values())) if one
            else sorted(set(complaint_of.values())),
        }).all()
        todo = _claimed_of(events, set(found[0].claimed or ()))
        applying = [e for e, apply in zip(events, todo, strict=True) if apply]
        if not applying:
            conn.exec_driver_sql("COMMIT")
            return todo
        state = {row["id"]: {"id": row["id"], **{c: row[c] for c in _STATE}}
                 for row in (r._mapping for r in found) if row["id"] is not None}
        history, messages = _apply_in_memory(applying, state)
        ids = list(dict.fromkeys(e.data["complaint_id"] for e in applying))
        if messages:
            conn.execute(_INSERT_MESSAGE, messages if len(messages) > 1 else messages[0])
        if len(ids) == len(history) == 1:
            params = dict(state[ids[0]])
            params.update({f"h_{c}": history[0][c] for c in _HISTORY})
            conn.exec_driver_sql(sql.write_one, params)
        else:
            params = {"id": ids, **{c: [state[i][c] for i in ids] for c in _STATE}}
            params.update({f"h_{c}": [h[c] for h in history] for c in _HISTORY})
            conn.exec_driver_sql(sql.write, params)
    return todo


def _apply_in_memory(applying: list[Event], state: dict) -> tuple[list[dict], list[dict]]:
    """Apply the events in order to the complaints' states (in place): their history entries
    and messages. UnknownComplaint when a complaint has no state (not ours)."""
    history, messages = [], []
    for event in applying:
        complaint_id = event.data["complaint_id"]
        row = state.get(complaint_id)
        if row is None:
            # Not ours (another intake database?): a permanent condition, not worth retries.
            raise UnknownComplaint(complaint_id)
        history.append(_apply_status(row, event, messages))
    return history, messages


def _apply_statuses(uow: UnitOfWork, connection, events: list[Event]) -> list[bool]:
    """SQLite and other drivers: claim, lock, update, history in the unit of work's
    transaction."""
    now = datetime.now(UTC)
    stmt = _CLAIMS.get(connection.dialect.name)
    if stmt is None:
        stmt = _CLAIMS[connection.dialect.name] = (
            dialect_insert(uow.session, processed_events).on_conflict_do_nothing()
            .returning(processed_events.c.event_id)
        )
    rows = [{"consumer": CONSUMER, "event_id": e, "processed_at": now}
            for e in dict.fromkeys(e.event_id for e in events)]
    claimed = set(connection.execute(stmt, rows if len(rows) > 1 else rows[0]).scalars())
    todo = _claimed_of(events, claimed)
    applying = [e for e, apply in zip(events, todo, strict=True) if apply]
    if not applying:
        return todo
    ids = list(dict.fromkeys(e.data["complaint_id"] for e in applying))
    state = {row.id: dict(row._mapping)
             for row in connection.execute(_LOCK_STATES, {"ids": ids})}
    history, messages = _apply_in_memory(applying, state)
    connection.execute(_UPDATE_STATE, [{"b_id": i, **{c: state[i][c] for c in _STATE}}
                                       for i in ids])
    connection.execute(_INSERT_HISTORY, history)
    if messages:
        connection.execute(_INSERT_MESSAGE, messages if len(messages) > 1 else messages[0])
    return todo


def _apply_status(row: dict, event: Event, messages: list) -> dict:
    """Apply `event` to the complaint's state `row` (in place); its history entry. Its message,
    if it carries one, is added to `messages`."""
    data = event.data
    seq = data.get("seq", 1)
    new_status = data.get("status", "routed")
    at = data.get("routed_at") or data.get("at") or event.occurred_at
    row["updated_at"] = datetime.now(UTC)
    if seq_applies(row["last_seq"], seq):
        row.update(status=new_status, last_seq=seq)
    # The unit and its deadline follow the latest routing on their own: events travel on
    # different queues, so complaint_responded (seq 3) may be applied before complaint_routed
    # (seq 1); the status stays at 3, the unit still comes from the routing.
    if event.event_type == "complaint_routed" and seq_applies(row["routed_seq"], seq):
        row.update(unit_code=data["unit_code"], unit_name=data["unit_name"],
                   due_at=data["due_at"], routed_seq=seq)
    kind_field = EVENT_MESSAGE_FIELD.get(event.event_type)
    if kind_field and data.get(kind_field[1]):
        messages.append({
            "complaint_id": data["complaint_id"], "kind": kind_field[0], "author": "unit",
            "body": data[kind_field[1]], "channel": None, "seq": seq, "at": at,
        })
    return {
        "complaint_id": data["complaint_id"], "status": new_status, "seq": seq, "at": at,
        "unit_code": data.get("unit_code"), "unit_name": data.get("unit_name"),
    }


# -- the complainant's actions on the tracking page -------------------------------------------


def _locked(uow: UnitOfWork, user_code: str):
    code = normalize_tracking_code(user_code)
    row = None
    if code is not None:
        row = uow.session.execute(
            select(complaints).where(complaints.c.tracking_code == code).with_for_update()
        ).first()
    if row is None:
        raise ActionRefused("not_found", "Kode pelacakan tidak ditemukan.")
    return row


def add_info(uow_factory, user_code: str, text: str, channel: str,
             now: datetime | None = None, *, complaint_id: str | None = None,
             idempotent: tuple[str, str] | None = None) -> str:
    """The complainant adds information (answer to a question, WhatsApp follow-up);
    publishes complaint_info_added. Returns the tracking code."""
    now = now or datetime.now(UTC)
    text = (text or "").strip()
    if not 1 <= len(text) <= 4000:
        raise ActionRefused("invalid_text", "Tulis keterangan tambahan (1 sampai 4.000 karakter).")
    with uow_factory() as uow:
        if complaint_id is not None:
            row = uow.session.execute(
                select(complaints).where(complaints.c.id == complaint_id).with_for_update()
            ).one()
        else:
            row = _locked(uow, user_code)
        if row.status in CLOSED:
            raise ActionRefused("closed", "Pengaduan ini sudah selesai; tidak dapat ditambah.")
        _message(uow, row.id, "info_added", text, channel, now)
        uow.publish(build_event(
            "complaint_info_added",
            {"complaint_id": row.id, "tracking_code": row.tracking_code, "channel": channel,
             "text": text, "at": now},
            correlation_id=row.id, occurred_at=now,
        ))
        if idempotent is not None:
            _remember(uow, idempotent[0], idempotent[1], "-", 200,
                      {"outcome": "info_added", "tracking_code": row.tracking_code},
                      row.id, now)
        uow.commit()
    return row.tracking_code


def rate(uow_factory, user_code: str, rating: int, comment: str = "",
         now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ActionRefused("invalid_rating", "Pilih penilaian 1 sampai 5.")
    comment = (comment or "").strip()[:1000]
    with uow_factory() as uow:
        row = _locked(uow, user_code)
        if not can_rate(row.status, row.rating):
            raise ActionRefused("not_allowed", "Penilaian hanya dapat diberikan sekali, "
                                "setelah pengaduan dinyatakan selesai.")
        uow.session.execute(
            update(complaints).where(complaints.c.id == row.id).values(rating=rating,
                                                                      updated_at=now)
        )
        _message(uow, row.id, "rating", f"Penilaian {rating}/5" + (f": {comment}" if comment
                                                                    else ""), "web", now)
        uow.publish(build_event(
            "complaint_rated",
            {"complaint_id": row.id, "tracking_code": row.tracking_code, "rating": rating,
             "comment": comment, "at": now},
            correlation_id=row.id, occurred_at=now,
        ))
        uow.commit()


def reopen(uow_factory, user_code: str, reason: str, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    reason = (reason or "").strip()
    if not 1 <= len(reason) <= 2000:
        raise ActionRefused("invalid_reason", "Tuliskan alasan pengaduan dibuka kembali.")
    with uow_factory() as uow:
        row = _locked(uow, user_code)
        if not can_reopen(row.status, row.last_seq, row.reopen_requested_seq):
            raise ActionRefused("not_allowed", "Pengaduan hanya dapat dibuka kembali setelah "
                                "dinyatakan selesai.")
        uow.session.execute(
            update(complaints).where(complaints.c.id == row.id)
            .values(reopen_requested_seq=row.last_seq, updated_at=now)
        )
        _message(uow, row.id, "reopen", reason, "web", now)
        uow.publish(build_event(
            "complaint_reopened",
            {"complaint_id": row.id, "tracking_code": row.tracking_code, "reason": reason,
             "at": now},
            correlation_id=row.id, occurred_at=now,
        ))
        uow.commit()


def _message(uow, complaint_id, kind, body, channel, now):
    uow.session.execute(_INSERT_MESSAGE, {
        "complaint_id": complaint_id, "kind": kind, "author": "complainant", "body": body,
        "channel": channel, "at": now,
    })


# -- WhatsApp ---------------------------------------------------------------------------------


def open_complaint_of(session, contact_key: str) -> str | None:
    """The id of the person's most recent complaint that is not resolved or closed."""
    row = session.execute(
        select(complaints.c.id)
        .where(complaints.c.contact_key == contact_key, complaints.c.status.not_in(CLOSED))
        .order_by(complaints.c.created_at.desc())
        .limit(1)
    ).first()
    return row.id if row else None


def count_complaints(session) -> int:
    return session.execute(select(func.count()).select_from(complaints)).scalar_one()


# -- evidence attachments ---------------------------------------------------------------------


def public_ref(ref: dict) -> dict:
    """The reference as events carry it: hash, size, media type, sanitised name."""
    return {k: ref[k] for k in ("sha256", "size", "media_type", "name")}


def record_attachment(uow: UnitOfWork, complaint_id: str, ref: dict, channel: str,
                      now: datetime) -> bool:
    """Attach a stored file to a complaint inside the caller's transaction; False when this
    complaint has these bytes already."""
    stmt = _on_conflict_do_nothing(uow.session, attachments_table)
    params = {"complaint_id": complaint_id, "channel": channel, "created_at": now,
              **public_ref(ref)}
    return uow.session.execute(stmt, params).rowcount == 1


def attachment_added_event(complaint_id, tracking_code, ref, channel, now) -> dict:
    return build_event(
        "complaint_attachment_added",
        {"complaint_id": complaint_id, "tracking_code": tracking_code, "channel": channel,
         "attachment": public_ref(ref), "at": now},
        correlation_id=complaint_id, occurred_at=now,
    )


def attach(uow_factory, complaint_id: str, ref: dict, channel: str,
           now: datetime | None = None) -> bool:
    """Attach a stored file to an existing complaint and announce it
    (complaint_attachment_added); False when it was attached already."""
    now = now or datetime.now(UTC)
    with uow_factory() as uow:
        code = uow.session.execute(
            select(complaints.c.tracking_code).where(complaints.c.id == complaint_id)
        ).scalar_one()
        if not record_attachment(uow, complaint_id, ref, channel, now):
            return False
        uow.publish(attachment_added_event(complaint_id, code, ref, channel, now))
        uow.commit()
    return True


def attachments_of(session, complaint_id: str) -> list[dict]:
    rows = session.execute(
        select(attachments_table)
        .where(attachments_table.c.complaint_id == complaint_id)
        .order_by(attachments_table.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def attachment_of(session, complaint_id: str, sha256: str) -> dict | None:
    row = session.execute(
        select(attachments_table).where(attachments_table.c.complaint_id == complaint_id,
                                        attachments_table.c.sha256 == sha256)
    ).first()
    return dict(row._mapping) if row else None


def referenced_hashes(session) -> set[str]:
    return set(session.execute(select(attachments_table.c.sha256).distinct()).scalars())
