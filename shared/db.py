"""Database plumbing shared by every service: engines, the outbox and processed-event tables,
and the unit of work that commits a state change together with the events it causes (with
`autocommit`, a transaction of one statement in one round trip on PostgreSQL)."""

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

# Integer on SQLite (so it is the rowid alias), BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTCDateTime column")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def prepared_statements() -> bool:
    """Whether a service may PREPARE statements on its PostgreSQL connections (routing's batch
    statement, intake's submit and routed-status statements, the outbox relays' claim). A
    prepared statement is session state: behind a pooler in transaction mode (PgBouncer's
    `pool_mode = transaction`) the next transaction may run on a server connection that lacks
    it, or has it already, so set DUMAS_PG_PREPARED_STATEMENTS=0 there; the services then run
    the same work as separate plain statements."""
    return os.environ.get("DUMAS_PG_PREPARED_STATEMENTS", "1") != "0"


class PreparedStatement:
    """A statement with psycopg2's `%(name)s` parameters as the PREPAREd statement `name`: its
    PREPARE (parameters $1, $2, ... in the order they first appear, their types inferred by the
    server from the statement: target columns, casts, comparisons; so a value too long for a
    `varchar(n)` column fails as it does in the text) and its EXECUTE with the same parameters.
    A prepared statement is session state, kept across transactions (also rolled-back ones);
    which connections have it is remembered in the pooled DBAPI connection's `info`
    (`prepare_on`), which a replaced connection does not inherit."""

    def __init__(self, name: str, sql: str):
        order = list(dict.fromkeys(_PARAMETER.findall(sql)))
        number = {parameter: n for n, parameter in enumerate(order, 1)}
        self.name = name
        self.prepare = f"PREPARE {name} AS " + _PARAMETER.sub(
            lambda m: f"${number[m.group(1)]}", sql)
        self.execute = f"EXECUTE {name} (" + ", ".join(f"%({p})s" for p in order) + ")"


_PARAMETER = re.compile(r"%\((\w+)\)s")
_PREPARED_ON = "dumas_prepared"  # key in the DBAPI connection's `info`: names prepared there
_NO_SUCH_PREPARED_STATEMENT = "26000"  # invalid_sql_statement_name


class PreparedStatementLost(Exception):
    """The server no longer has a statement this connection PREPAREd (its session was reset):
    the attempt failed having written nothing; the next one prepares it again."""


def prepare_on(connection: Connection, *statements: PreparedStatement) -> None:
    """PREPARE those of `statements` the database connection does not have yet (one round trip,
    the first time a connection runs them): the server then parses each once per connection
    and, after its first executions, plans it once."""
    have = connection.connection.info.setdefault(_PREPARED_ON, set())
    missing = [statement for statement in statements if statement.name not in have]
    if missing:
        connection.exec_driver_sql("; ".join(statement.prepare for statement in missing))
        have.update(statement.name for statement in missing)


@contextmanager
def prepared_statements_lost(connection: Connection) -> Iterator[None]:
    """Inside: the server's "no such prepared statement" raises PreparedStatementLost, and
    the connection is taken to have none of them (a session reset drops them all)."""
    try:
        yield
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) == _NO_SUCH_PREPARED_STATEMENT:
            connection.connection.info.pop(_PREPARED_ON, None)
            raise PreparedStatementLost(str(exc.orig)) from exc
        raise


def utcnow() -> datetime:
    return datetime.now(UTC)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("exchange", String(64), nullable=False),
        Column("routing_key", String(64), nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer", String(64), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UTCDateTime, nullable=False),
        # The retention sweep (shared/retention.py) deletes the oldest first; the primary key is
        # in random order (event ids are UUIDs), so without it every batch would scan the table.
        Index("ix_processed_events_processed_at", "processed_at"),
    )


def make_engine(url: str, **kwargs) -> Engine:
    """Engine with settings that suit eventlet workers on SQLite and PostgreSQL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if "poolclass" not in kwargs:
        # Kept connections match a service's usual concurrency (nameko's max_workers is 20):
        # with fewer, every unit of work beyond them opened and closed a connection of its own
        # (a PostgreSQL backend fork each). The peak (30) is unchanged.
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", 1800)
    if "pool_pre_ping" in kwargs:
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine, IDLE_PING_AFTER)
    return engine


# A pooled connection unused for this long is checked (SELECT 1) before it is handed out.
IDLE_PING_AFTER = 5.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling without a round trip per checkout.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one extra round trip for every unit of
    work (about a tenth of notification's CPU under load). Here only a connection that sat idle
    in the pool for `idle_seconds` is pinged; a dead one is replaced transparently. A server
    restart while connections are busy is still detected on their next statement (SQLAlchemy
    then invalidates the whole pool), so at most that one unit of work fails and is retried.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["dumas_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        idle_since = record.info.pop("dumas_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs, outside a transaction
        except Exception as exc:
            # The pool discards this connection and checks out another one.
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def dialect_insert(session: Session, table: Table):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    return insert(table)


_STATEMENTS: dict = {}


def _insert_statement(table: Table):
    stmt = _STATEMENTS.get(("insert", table))
    if stmt is None:
        stmt = _STATEMENTS[("insert", table)] = table.insert()
    return stmt


def _claim_statement(session: Session, table: Table):
    """INSERT ... ON CONFLICT DO NOTHING into processed_events, built once per dialect."""
    key = ("claim", session.get_bind().dialect.name, table)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = dialect_insert(session, table).on_conflict_do_nothing()
    return stmt


def _outbox_row(envelope: dict) -> dict:
    return {
        "event_id": envelope["event_id"],
        "exchange": f"{envelope['producer']}.events",
        "routing_key": envelope["event_type"],
        "correlation_id": envelope["correlation_id"],
        "body": json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
        "created_at": utcnow(),
    }


# libpq's transaction status of a connection (psycopg2.extensions.TRANSACTION_STATUS_*), read
# locally: what the server said in its last ReadyForQuery.
_PG_IDLE, _PG_INTRANS, _PG_INERROR = 0, 2, 3


@contextmanager
def autocommit(session: "Session | Transaction") -> Iterator[Connection]:
    """The session's Core connection, for a transaction that is ONE statement (or one query
    string of several statements) sent in ONE round trip on PostgreSQL.

    psycopg2 sends `BEGIN` as a round trip of its own before a transaction's first statement,
    and `COMMIT` or `ROLLBACK` as another: a transaction of one statement costs three round
    trips (each a network wait, which under eventlet's psycopg2 wait callback is a switch
    through the hub and an epoll registration, and a protocol exchange for the server). Inside
    this block the connection is in psycopg2's autocommit mode instead: a statement, or a query
    string of several (PostgreSQL runs those as one implicit transaction: all of them commit or
    none does), commits on its own when it succeeds and leaves nothing behind when it fails.
    So the block must hold the WHOLE transaction: each execute in it is a transaction of its
    own, and what runs on the session after the block is a new one. (A transaction of several
    round trips can still use it by sending `BEGIN` and `COMMIT` in its own query strings, as
    notification's plan does; then the server's transaction is one psycopg2 does not know
    about, which is what the safety rules below are for.)

    - The flag is set on the DB-API connection directly, and only before any statement of the
      session's transaction (RuntimeError otherwise: that transaction would be committed or
      lost piecemeal). SQLAlchemy's AUTOCOMMIT isolation level would cost a `SET
      default_transaction_isolation` round trip when the connection goes back to the pool.
    - The flag is restored when the block ends, however it ends. psycopg2 then knows of no
      open transaction, so the session's commit or rollback sends nothing.
    - If the block ends with a transaction still open on the server (an error after an explicit
      `BEGIN`), it is rolled back with an explicit `ROLLBACK`; if that fails, or the
      connection's state is unknown (interrupted mid-statement), the connection is invalidated:
      the pool never hands out a connection inside a transaction. A failed single statement
      needs neither (its implicit transaction ended with it). A block that ends normally with a
      transaction open is rolled back the same way and raises RuntimeError.

    Elsewhere (SQLite, another driver) the block is the session's ordinary transaction. Either
    way the caller ends with `UnitOfWork.commit()` (or the session's commit) as usual: on
    PostgreSQL it sends nothing then, and still wakes the outbox relay for staged events.
    """
    conn = session.connection()
    if conn.dialect.driver != "psycopg2":
        yield conn
        return
    raw = conn.connection.dbapi_connection
    if raw.info.transaction_status != _PG_IDLE:
        raise RuntimeError("autocommit: the session's transaction has run statements already")
    raw.autocommit = True
    try:
        yield conn
    except BaseException:
        _end_open_transaction(conn, raw)
        raise
    else:
        if not raw.closed and raw.info.transaction_status != _PG_IDLE:
            _end_open_transaction(conn, raw)
            raise RuntimeError("autocommit: the block left a transaction open (rolled back)")
    finally:
        if not raw.closed:
            raw.autocommit = False


def _end_open_transaction(conn: Connection, raw) -> None:
    """After a failure in an `autocommit` block: roll back a transaction the server still has
    open (psycopg2 does not know of it); invalidate the connection if that is not possible."""
    if raw.closed:
        return  # a disconnect: SQLAlchemy invalidates the connection itself
    status = raw.info.transaction_status
    if status == _PG_IDLE:
        return
    if status in (_PG_INTRANS, _PG_INERROR):
        try:
            conn.exec_driver_sql("ROLLBACK")
            return
        except Exception:
            log.debug("rollback after a failed autocommit block failed", exc_info=True)
    # A statement still running (interrupted), an unknown state, or a failed rollback: the
    # transaction may still be open on the server and the pool must not hand it out again.
    conn.invalidate()


class Transaction:
    """What a unit of work's `session` offers, on one Core `Connection` instead of an ORM Session.

    The services run only Core statements in a unit of work (no mapped classes, no identity
    map, no flush); through a Session each one still went through the ORM's execute path, and
    each transaction through its SessionTransaction bookkeeping: about 60 us of CPU per
    transaction of one statement on PostgreSQL and 40 on SQLite, more with more statements
    (bench/uow_cpu.py, docs/performance.md session 7). This object has the Session methods the
    services use, with the Session's meaning, and nothing ORM-only:

    - `execute`, `scalar`, `scalars`: the connection's (it begins a transaction if none is
      open, as the Session did);
    - `connection()`: the Connection, its transaction begun (as `Session.connection()` does;
      `autocommit` relies on nothing having run on it yet);
    - `get_bind()` and `bind`: the engine; `in_transaction()`;
    - `commit()`, `rollback()`: end the connection's transaction (nothing when none is open)
      and return the connection to the pool, as the Session did: a unit of work that goes on
      after a commit checks out a connection again and holds none in between;
    - `close()`: returns the connection to the pool (its transaction, if any, rolled back);
      `with Transaction(engine) as s:` closes it at the end, as `with Session(engine)` does.

    The connection is checked out on the first use, so a unit of work that runs nothing costs
    no checkout.
    """

    __slots__ = ("bind", "_conn")

    def __init__(self, engine: Engine):
        self.bind = engine
        self._conn: Connection | None = None

    def get_bind(self, *_args, **_kwargs) -> Engine:
        return self.bind

    def _checked_out(self) -> Connection:
        conn = self._conn
        if conn is None:
            conn = self._conn = self.bind.connect()
        return conn

    def connection(self, *_args, **_kwargs) -> Connection:
        conn = self._checked_out()
        if not conn.in_transaction():
            conn.begin()
        return conn

    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction()

    def execute(self, statement, params=None, *, execution_options=None):
        return self._checked_out().execute(statement, params,
                                           execution_options=execution_options)

    def scalar(self, statement, params=None, *, execution_options=None):
        return self.execute(statement, params, execution_options=execution_options).scalar()

    def scalars(self, statement, params=None, *, execution_options=None):
        return self.execute(statement, params, execution_options=execution_options).scalars()

    def commit(self) -> None:
        self._end(Connection.commit)

    def rollback(self) -> None:
        self._end(Connection.rollback)

    def close(self) -> None:
        self._end(None)

    def _end(self, finish) -> None:
        """Finish the connection's transaction (`finish`: commit or rollback; None: whatever
        the pool does on return) and give the connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if finish is not None:
                    finish(conn)
            finally:
                conn.close()

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _engine_of(session_factory) -> Engine | None:
    """The engine a plain `sessionmaker(engine, ...)` binds to; None for anything else (a
    factory bound to a Connection, a custom one): that unit of work keeps an ORM Session."""
    bind = getattr(session_factory, "kw", {}).get("bind")
    return bind if isinstance(bind, Engine) else None


class UnitOfWork:
    """One transaction: state changes, processed-event marks and outbox rows commit together.

    A transaction that is a single statement (or one query string) runs in `autocommit()`:
    one round trip on PostgreSQL instead of three; then `commit()` as usual.

    `session` is a `Transaction`: the Session methods the services use, on one Core
    connection (a factory that is not a `sessionmaker` bound to an engine gets its Session).

    Never yield to other greenthreads (RPC, HTTP, dispatch) while a UnitOfWork is open on SQLite:
    commit first, then do the I/O (see NAMEKO-NOTES trap 7).
    """

    def __init__(
        self,
        session_factory: sessionmaker,
        outbox: Table | None,
        processed: Table | None,
        on_events_committed: Callable[[], None] | None = None,
    ):
        self._session_factory = session_factory
        self._engine = _engine_of(session_factory)
        self._outbox = outbox
        self._processed = processed
        self._on_events_committed = on_events_committed
        self.session: Transaction | Session | None = None
        self._staged = 0

    def __enter__(self) -> "UnitOfWork":
        engine = self._engine
        self.session = Transaction(engine) if engine is not None else self._session_factory()
        self._staged = 0
        return self

    def __exit__(self, *exc):
        try:
            self.session.rollback()
        finally:
            self.session.close()

    def claim(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` processes `event_id`; False if it already did (a redelivery)."""
        params = {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
        stmt = _claim_statement(self.session, self._processed)
        return self.session.execute(stmt, params).rowcount == 1

    def publish(self, envelope: dict) -> None:
        """Stage an event (built with shared.contracts.build_event) to be published on commit."""
        # A statement built once with parameters: no per-call construction and cache-key work.
        self.session.execute(_insert_statement(self._outbox), _outbox_row(envelope))
        self._staged += 1

    def outbox_row(self, envelope: dict) -> dict:
        """The outbox row `publish` would insert, for a caller that inserts it with its own
        statement (intake's submit sends all its inserts in one round trip on PostgreSQL); the
        row counts as staged, so `commit` wakes the relay."""
        self._staged += 1
        return _outbox_row(envelope)

    def publish_many(self, envelopes: list[dict]) -> None:
        """`publish` for several events in one statement (a multi-row INSERT)."""
        rows = [_outbox_row(envelope) for envelope in envelopes]
        if rows:
            self.session.execute(_insert_statement(self._outbox),
                                 rows if len(rows) > 1 else rows[0])
            self._staged += len(rows)

    def autocommit(self):
        """Context manager: the session's connection for a transaction that is ONE statement
        (or one query string), in one round trip on PostgreSQL: `shared.db.autocommit`, whose
        rules apply. Use it before any other statement of this unit of work, put the whole
        transaction in it, then call `commit()` (on PostgreSQL it sends nothing; it wakes the
        outbox relay for rows staged with `outbox_row`). On SQLite the block is the ordinary
        transaction and `commit()` commits it.

            with uow_factory() as uow:
                with uow.autocommit() as conn:
                    conn.exec_driver_sql(sql, params)
                uow.commit()
        """
        return autocommit(self.session)

    def commit(self) -> None:
        self.session.commit()
        if self._staged and self._on_events_committed:
            self._on_events_committed()
        self._staged = 0


__all__ = [
    "JSON",
    "BigId",
    "PreparedStatement",
    "PreparedStatementLost",
    "Transaction",
    "UTCDateTime",
    "UnitOfWork",
    "autocommit",
    "make_engine",
    "outbox_table",
    "prepare_on",
    "prepared_statements",
    "prepared_statements_lost",
    "processed_events_table",
    "utcnow",
]
