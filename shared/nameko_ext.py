"""nameko adapters shared by every service: the database (with its outbox relay) and a reliable
event consumer (strict contracts, idempotency support, retries with back-off, dead letters),
one event per worker or in batches.

With shared/container.py (the service container class) these are the only modules of `shared`
that import nameko; domain code never does.
"""

import errno
import logging
import threading
import time
from datetime import UTC, datetime
from functools import partial

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.transport import TCPTransport
from eventlet.semaphore import Semaphore
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.pools import producers
from kombu.transport import pyamqp
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.messaging import Consumer, QueueConsumer
from nameko.rpc import Rpc, RpcConsumer
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from sqlalchemy import MetaData, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from shared import messaging, metrics, outbox, retention, throttle, web
from shared.contracts import Event, MalformedEvent, load_event
from shared.db import UnitOfWork, make_engine
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


def _config_value(config, key: str, default):
    """`config[key]`, or `default` when it is missing or empty (`${VAR:}` with VAR set to "" in
    a config.yaml gives None). Settings come from the service's config.yaml only; each one reads
    its environment variable there."""
    value = config.get(key)
    return default if value in (None, "") else value


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the message is parked at once."""

    reason = "permanent_error"


# -- HTTP -------------------------------------------------------------------------------------


HTTP_MAX_WORKERS = "HTTP_MAX_WORKERS"


def http_worker_limit(config) -> int:
    """How many of the container's `max_workers` HTTP requests may hold at once.

    The workers are shared by every entrypoint: without a bound a burst of form posts takes
    all of them and the event consumers and RPC (intake's `get_contact`) wait behind it. Default
    three quarters of `max_workers`; always at least 1 and at most `max_workers`."""
    max_workers = int(config.get("max_workers") or 10)
    limit = int(_config_value(config, HTTP_MAX_WORKERS, (max_workers * 3) // 4))
    return min(max(limit, 1), max_workers)


class _EdgeWsgiApp(WsgiApp):
    """nameko's WSGI app with the route matched once, and Dumas's own answer when no route
    matches (404/405 in Indonesian, with the security headers) instead of werkzeug's bare
    English page."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            if exc.code is not None and exc.code >= 400:
                return web.unmatched_response(request, exc)(environ, start_response)
            return exc(environ, start_response)  # a redirect (e.g. to the trailing slash)
        request.path_values = values
        try:
            response = provider.handle_request(request)
        except HTTPException as exc:  # as nameko's WsgiApp does
            response = exc
        return response(environ, start_response)


class _EdgeWebServer(WebServer):
    def setup(self):
        super().setup()
        config = self.container.config
        self.slots = Semaphore(http_worker_limit(config))
        self.slot_waits = metrics.HTTP_SLOT_WAITS.labels(self.container.service_name)
        self.in_workers = metrics.HTTP_IN_WORKERS.labels(self.container.service_name)

    def get_wsgi_app(self):
        return _EdgeWsgiApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=HttpOnlyProtocol, debug=False):
        server = super().get_wsgi_server(sock, wsgi_app, protocol, debug)
        # eventlet formats an access-log line for every request even when nothing would show
        # it (nameko's loggers are at WARNING in every config.yaml): only when it would.
        server.log_output = logging.getLogger("nameko.web.server").isEnabledFor(logging.INFO)
        return server


class _EdgeHttpHandler(HttpRequestHandler):
    server = _EdgeWebServer()

    def setup(self):
        super().setup()
        self._signatures_ok: set[tuple[str, ...]] = set()

    def check_signature(self, args, kwargs):
        # nameko runs inspect.getcallargs at every request; the arguments are always
        # (request, **path values of this rule), so one check per set of names is enough.
        names = tuple(kwargs)
        if names not in self._signatures_ok:
            super().check_signature(args, kwargs)
            self._signatures_ok.add(names)

    def handle_request(self, request):
        server = self.server
        if server.slots.locked():
            server.slot_waits.inc()
        with server.slots:
            server.in_workers.inc()
            try:
                return super().handle_request(request)
            finally:
                server.in_workers.dec()


# Use this `http` (not nameko.web.handlers') in every service: one web server per container.
http = _EdgeHttpHandler.decorator


# -- database ---------------------------------------------------------------------------------


class DatabaseAccess:
    """What a worker sees: units of work, plain sessions for reads, and health."""

    def __init__(self, provider: "Database"):
        self._provider = provider
        self.engine = provider.engine

    def unit_of_work(self) -> UnitOfWork:
        p = self._provider
        return UnitOfWork(
            p.sessionmaker,
            p.metadata.tables.get("outbox"),
            p.metadata.tables.get("processed_events"),
            on_events_committed=p.relay.wake if p.relay else None,
        )

    def session(self):
        return self._provider.sessionmaker()

    def refresh_metrics(self) -> None:
        """Update the outbox backlog gauges (called when /metrics is scraped)."""
        if self._provider.relay:
            try:
                self._provider.relay.refresh_metrics()
            except Exception as exc:
                log.warning("could not measure the outbox backlog: %s", exc)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.warning("database ping failed: %s", exc)
            return False


class Database(DependencyProvider):
    """One engine per service process; runs the outbox relay when the metadata has an outbox,
    and the retention sweep (shared/retention.py) of its outbox and processed_events tables
    every OUTBOX_RETENTION_SWEEP_SECONDS."""

    def __init__(self, metadata: MetaData, **engine_options):
        self.metadata = metadata
        self.engine_options = engine_options
        self.engine = None
        self.sessionmaker = None
        self.relay: OutboxRelay | None = None
        self._relay_thread = None
        self._retention_thread = None
        self._retention_stop = threading.Event()
        self.retention_interval = 0.0

    def setup(self):
        config = self.container.config
        self.engine = make_engine(config["DATABASE_URL"], **self.engine_options)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        if "outbox" in self.metadata.tables:
            self.relay = OutboxRelay(
                self.engine,
                self.metadata.tables["outbox"],
                config["AMQP_URI"],
                self.container.service_name,
                batch_size=int(config.get("OUTBOX_BATCH_SIZE", 200)),
                gather_ms=float(_config_value(config, "OUTBOX_RELAY_GATHER_MS",
                                              outbox.DEFAULT_GATHER_MS)),
                delete_published=retention.delete_published(config),
            )
        if self._retained_tables() != (None, None):
            self.retention_interval = retention.sweep_interval(config)

    def _retained_tables(self):
        tables = self.metadata.tables
        return tables.get("outbox"), tables.get("processed_events")

    def start(self):
        if self.relay:
            self._relay_thread = self.container.spawn_managed_thread(
                self.relay.run, identifier="outbox_relay"
            )
        if self.retention_interval > 0:
            self._retention_stop.clear()
            self._retention_thread = self.container.spawn_managed_thread(
                self._retention_loop, identifier="retention_sweep"
            )

    def _retention_loop(self):
        # The first sweep one interval after the start, as nameko's timers do.
        while not self._retention_stop.wait(self.retention_interval):
            self.sweep_retention()

    def sweep_retention(self, now: datetime | None = None) -> dict[str, int] | None:
        """One retention sweep; never raises (an exception would end the managed thread and
        with it the container). None when refused or skipped."""
        try:
            windows = retention.windows_from(self.container.config)
        except retention.RetentionConfigError as exc:
            log.error("retention sweep refused, nothing deleted: %s", exc)
            return None
        try:
            return retention.sweep(
                lambda: UnitOfWork(self.sessionmaker, None, None), *self._retained_tables(),
                windows, self.container.service_name, now=now,
                keep_going=lambda: not self._retention_stop.is_set())
        except (OperationalError, InterfaceError) as exc:
            log.warning("retention sweep skipped, database unavailable: %s", exc)
        except Exception:
            log.exception("retention sweep failed; the next one tries again")
        return None

    def stop(self):
        self._retention_stop.set()
        if self.relay:
            self.relay.stop()
            if self._relay_thread is not None:
                self._relay_thread.wait()
        if self._retention_thread is not None:
            self._retention_thread.wait()  # ends after its current batch
        if self.engine is not None:
            self.engine.dispose()

    def kill(self):
        self._retention_stop.set()
        if self.relay:
            self.relay.stop()

    def get_dependency(self, worker_ctx):
        return DatabaseAccess(self)


# -- health -----------------------------------------------------------------------------------


class BrokerProbe:
    """Answers "can this process reach RabbitMQ?", cached briefly so health checks stay cheap."""

    def __init__(self, amqp_uri: str, ttl: float = 2.0):
        self.amqp_uri = amqp_uri
        self.ttl = ttl
        self._checked_at = 0.0
        self._ok = False

    def ok(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > self.ttl:
            self._checked_at = now
            try:
                with Connection(self.amqp_uri, connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
                self._ok = True
            except Exception as exc:
                if self._ok:
                    log.warning("broker unreachable: %s", exc)
                self._ok = False
        return self._ok


class Health(DependencyProvider):
    def setup(self):
        self.probe = BrokerProbe(self.container.config["AMQP_URI"])

    def get_dependency(self, worker_ctx):
        return self.probe


class LoginGuard(DependencyProvider):
    """The service's sign-in throttle (shared.throttle), one per container."""

    def __init__(self, service: str):
        self.service = service

    def setup(self):
        self.throttle = throttle.login_throttle(self.service, dict(self.container.config))

    def get_dependency(self, worker_ctx):
        return self.throttle


# -- reliable event consumer ------------------------------------------------------------------


class _BufferedTcpTransport(TCPTransport):
    """py-amqp's TCP transport, reading what the socket holds instead of exactly one frame part.

    py-amqp asks the socket for exactly the bytes it parses next: a delivered message is three
    frames (method, header, body) of three parts each (header, payload, end octet), so nine
    `recv` calls, each a system call and a pass through eventlet's green socket. Here one
    `recv` takes up to READ_SIZE bytes (usually the whole message, often several) and the
    frames are cut from the buffer. The buffer is py-amqp's own `_read_buffer`, so its frame
    reader's handling of timeouts (unread bytes put back) is unchanged.
    """

    READ_SIZE = 16384

    def _read(self, n, initial=False, _errnos=(errno.EAGAIN, errno.EINTR)):
        rbuf = self._read_buffer
        if len(rbuf) < n:
            recv = self._quick_recv
            try:
                while len(rbuf) < n:
                    try:
                        s = recv(max(n - len(rbuf), self.READ_SIZE))
                    except OSError as exc:
                        if exc.errno in _errnos:
                            if initial and self.raise_on_initial_eintr:
                                raise TimeoutError from exc
                            continue
                        raise
                    if not s:
                        raise OSError("Server unexpectedly closed connection")
                    rbuf += s
            except:  # noqa: E722 - as py-amqp: keep what was read, whatever interrupted
                self._read_buffer = rbuf
                raise
        result, self._read_buffer = rbuf[:n], rbuf[n:]
        return result


class _BufferedAmqpConnection(pyamqp.Connection):
    def Transport(self, host, connect_timeout, ssl=False, *args, **kwargs):  # noqa: N802
        if ssl:
            return super().Transport(host, connect_timeout, ssl, *args, **kwargs)
        return _BufferedTcpTransport(host, connect_timeout, *args, **kwargs)


class _BufferedAmqpTransport(pyamqp.Transport):
    """kombu's py-amqp transport with `_BufferedTcpTransport` sockets (plain TCP; TLS as is)."""

    Connection = _BufferedAmqpConnection


class ReliableQueueConsumer(QueueConsumer):
    """nameko's queue consumer, plus: messages that cannot even be decoded are parked instead of
    crashing the consumer, an ack or requeue that meets a dropped connection does not kill the
    container, the connection reads through `_BufferedTcpTransport`, and a message is handed to
    its provider in this thread while a worker is free (docs/performance.md, session 5)."""

    @property
    def connection(self):
        # nameko's connection parameters; each (re)connection made with the buffered transport.
        conn = super().connection
        conn.transport_cls = _BufferedAmqpTransport
        return conn

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(provider.handle_undecodable)
        return consumers

    def handle_message(self, provider, body, message):
        # nameko hands every message to a new greenthread, which then spawns the worker, so
        # that this consumer thread never waits for a worker slot. Our providers' handling
        # before the worker is plain computation (the event is loaded, or the message parked as
        # the undecodable ones always were, here), so while a slot is free it runs here: one
        # greenthread and two switches less per message. The pool is nameko's (2.14).
        if self.container._worker_pool.free():
            provider.handle_message(body, message)
        else:
            super().handle_message(provider, body, message)

    # nameko ignores amqp's ConnectionError here but not a socket error from the write itself
    # (ConnectionResetError when the broker goes away mid-ack), which escaped into the worker's
    # result handling and killed the container (found by `make chaos`). The broker hands the
    # unacknowledged message out again after the reconnect; consumers are idempotent.
    def ack_message(self, message):
        try:
            super().ack_message(message)
        except OSError as exc:
            log.warning("ack lost with the broker connection (%s); it will be redelivered", exc)

    def requeue_message(self, message):
        try:
            super().requeue_message(message)
        except OSError as exc:
            log.warning("requeue lost with the broker connection (%s); the broker requeues "
                        "it", exc)


class EventConsumer(Consumer):
    """`@event_consumer("intake", "complaint_received")`: the handler receives a loaded `Event`.

    - malformed messages (undecodable, wrong envelope, unknown version, invalid data): parked;
    - handler raised PermanentError: parked;
    - handler raised anything else: retried after 1 s, 5 s, 30 s, 2 min, then parked;
    - the original is acked only after its retry copy or parked copy is confirmed by the broker.
    """

    queue_consumer = ReliableQueueConsumer()

    def __init__(self, producer: str, event_type: str, **kw):
        self.producer = producer
        self.event_type = event_type
        super().__init__(queue=None, **kw)

    def setup(self):
        config = self.container.config
        self.service_name = self.container.service_name
        # Back-off delays are configuration (tests use short ones); one more attempt than delays.
        self.delays_ms = tuple(
            int(d) for d in config.get("EVENT_RETRY_DELAYS_MS", messaging.RETRY_DELAYS_MS)
        )
        self.max_attempts = len(self.delays_ms) + 1
        self._expected_types = (self.event_type,)
        self._durations = {}
        self.queue = messaging.consumer_queue(
            self.service_name, self.producer, self.event_type, self.delays_ms
        )
        self._publish_conn = Connection(
            self.container.config["AMQP_URI"], transport_options={"confirm_publish": True}
        )
        super().setup()

    # messages --------------------------------------------------------------------------
    def handle_message(self, body, message):
        started = time.perf_counter()
        event = self._load_or_park(body, message, started)
        if event is None:
            return
        handle_result = partial(self.handle_result, message, started)
        context_data = self.unpack_message_headers(message)
        context_data["correlation_id"] = event.correlation_id
        try:
            self.container.spawn_worker(
                self, (event,), {}, context_data=context_data, handle_result=handle_result
            )
        except Exception:  # container being killed: let the broker redeliver it
            self.queue_consumer.requeue_message(message)

    def _load_or_park(self, body, message, started) -> Event | None:
        """The message's event loaded strictly; None if it is malformed (then it is parked)."""
        try:
            return load_event(body, expected_types=self._expected_types)
        except MalformedEvent as exc:
            self._park(message, exc.reason, str(exc), started)
            return None

    def handle_undecodable(self, message, exc):
        self._park(message, "undecodable", f"{type(exc).__name__}: {exc}", time.perf_counter())

    def handle_result(self, message, started, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            self._observe(started, "ok")
            self.queue_consumer.ack_message(message)
            return result, exc_info
        exc = exc_info[1]
        attempts = int((message.headers or {}).get(messaging.ATTEMPTS_HEADER, 0)) + 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if isinstance(exc, PermanentError):
            self._park(message, exc.reason, error, started, attempts)
        elif attempts >= self.max_attempts:
            self._park(message, "max_attempts_exceeded", error, started, attempts)
        else:
            log.warning(
                "%s.%s failed (attempt %d/%d), retrying: %s",
                self.service_name, self.event_type, attempts, self.max_attempts, error,
                exc_info=exc_info,
            )
            target = messaging.retry_queue_name(self.queue.name, attempts, len(self.delays_ms))
            if self._republish(message, target, {messaging.ATTEMPTS_HEADER: attempts}):
                metrics.HANDLER_RETRIES.labels(self.service_name, self.event_type).inc()
                self._observe(started, "retry")
        return result, exc_info

    # helpers ---------------------------------------------------------------------------
    def _park(self, message, reason, error, started, attempts=None):
        log.error(
            "%s: parking %s message in %s.dead (%s): %s",
            self.service_name, self.event_type, self.queue.name, reason, error[:300],
        )
        headers = {
            messaging.REASON_HEADER: reason,
            messaging.ERROR_HEADER: error[:1000],
            messaging.QUEUE_HEADER: self.queue.name,
            messaging.PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
        }
        if attempts is not None:
            headers[messaging.ATTEMPTS_HEADER] = attempts
        if self._republish(message, messaging.dead_queue_name(self.queue.name), headers):
            metrics.DEAD_LETTERED.labels(self.service_name, self.event_type, reason).inc()
            self._observe(started, "dead_lettered")

    def _republish(self, message, queue_name: str, extra_headers: dict) -> bool:
        """Copy the raw message to `queue_name` (confirmed), then ack the original.

        If the copy cannot be published, the original is requeued: nothing is lost.
        """
        headers = {**(message.headers or {}), **extra_headers}
        props = message.properties or {}
        # The target must exist, or the broker would drop the copy as unroutable.
        target = next(q for q in self.queue.companions if q.name == queue_name)
        body = message.body
        if isinstance(body, str):  # kombu may hand over text; send the exact bytes back
            body = body.encode("utf-8")
        try:
            with producers[self._publish_conn].acquire(block=True, timeout=10) as producer:
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue_name,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding=message.content_encoding or "binary",
                    headers=headers,
                    delivery_mode=2,
                    message_id=props.get("message_id"),
                    correlation_id=props.get("correlation_id"),
                    declare=[target],
                    mandatory=True,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.2},
                )
        except Exception:
            log.exception("could not move message to %s; requeueing it", queue_name)
            self.queue_consumer.requeue_message(message)
            return False
        self.queue_consumer.ack_message(message)
        return True

    def _observe(self, started, outcome):
        # The labelled children are looked up once per outcome (`labels()` per message was a
        # measurable part of this consumer's own CPU).
        child = self._durations.get(outcome)
        if child is None:
            child = self._durations[outcome] = metrics.HANDLER_DURATION.labels(
                self.service_name, self.event_type, outcome)
        child.observe(time.perf_counter() - started)


event_consumer = EventConsumer.decorator


# -- batched event consumer -------------------------------------------------------------------


class BatchQueueConsumer(ReliableQueueConsumer):
    """The queue consumer of the batch consumers: its own connection and channel (nameko shares
    one queue consumer per class and container), so its prefetch can let batches fill.

    nameko's prefetch is the container's `max_workers` for every consumer; a batch consumer
    needs `max_batch` messages in hand to fill a batch, plus room for the next batch to gather
    while one is being handled. RabbitMQ applies the (non-global) prefetch to each consumer of
    the channel, so every batch queue gets the largest prefetch its providers ask for.
    """

    @property
    def prefetch_count(self):
        return max([self.container.max_workers, *(p.prefetch for p in self._providers)])

    # Acks. A successful batch is acked with one basic.ack(multiple=True) where that is safe
    # (docs/performance.md, session 7). `multiple` acks every unacked delivery of the channel up
    # to the tag, and the batch consumers of a container share this one channel (other queues,
    # other groups, the next batch gathering, a batch still in a worker, a message being
    # parked). So every delivery is tracked from its arrival until its own ack or requeue has
    # been written, in delivery order, and a batch is acked with `multiple` only for the run of
    # its messages that starts at the channel's oldest unsettled delivery; the rest of the
    # batch one by one. A tag leaves the tracking only after its ack/requeue frame is written,
    # so a concurrent `multiple` never covers a delivery that someone else is settling.

    def setup(self):
        super().setup()
        self._channel = None
        self._unsettled: dict = {}  # delivery tag -> None, in delivery order, of _channel

    def _delivered(self, message):
        if message.channel is not self._channel:
            # A new channel (after a (re)connection): its tags start again at 1, and the old
            # channel's unacked deliveries went back to their queues with it.
            self._channel = message.channel
            self._unsettled = {}
        self._unsettled[message.delivery_tag] = None

    def _settled(self, message):
        if message.channel is self._channel:
            self._unsettled.pop(message.delivery_tag, None)

    def handle_message(self, provider, body, message):
        self._delivered(message)
        super().handle_message(provider, body, message)

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._undecodable, provider)
        return consumers

    def _undecodable(self, provider, message, exc):
        self._delivered(message)
        provider.handle_undecodable(message, exc)

    def ack_message(self, message):
        super().ack_message(message)
        self._settled(message)

    def requeue_message(self, message):
        super().requeue_message(message)
        self._settled(message)

    def ack_messages(self, messages) -> None:
        """Ack `messages` (delivered through this queue consumer): the longest run of them that
        starts at the channel's oldest unsettled delivery with one basic.ack(multiple=True),
        the others one by one."""
        channel, unsettled = self._channel, self._unsettled
        if len(messages) > 1 and channel is not None and channel.connection:
            mine = {m.delivery_tag: m for m in messages if m.channel is channel}
            run = []
            for tag in unsettled:  # in delivery order; no yield until the ack is written
                if tag not in mine:
                    break
                run.append(tag)
            if len(run) > 1:
                last = mine[run[-1]]
                try:
                    last.ack(multiple=True)
                except (AmqpConnectionError, OSError) as exc:
                    log.warning("ack lost with the broker connection (%s); it will be "
                                "redelivered", exc)
                    return
                for tag in run:
                    del unsettled[tag]
                    mine[tag]._state = "ACK"  # as kombu's Message.ack marks it
                acked = set(run)
                messages = [m for m in messages
                            if m.channel is not channel or m.delivery_tag not in acked]
        for message in messages:
            self.ack_message(message)


class _BatchGroup(SharedExtension):
    """What batch consumers that gather together share: the waiting events, the timer and the
    handler call. One per `batch_group` name in a container; a consumer without a group has a
    private one."""

    def __init__(self, name: str | None = None):
        self.name = name
        self.members: list[BatchEventConsumer] = []
        self.max_batch = 1
        self.max_wait = 0.0
        self._pending: list = []  # (member, event, message, started) in delivery order
        self._timer = None
        super().__init__()

    @property
    def sharing_key(self):
        # Evaluated on the unbound prototype: a private group is its consumer's alone.
        return type(self), self.name or id(self)

    def register(self, member: "BatchEventConsumer") -> None:
        """Called by each member's setup. The group gathers up to the smallest `max_batch` of
        its members for at most the shortest `max_wait`."""
        self.members.append(member)
        self.max_batch = min(m.max_batch for m in self.members)
        self.max_wait = min(m.max_wait for m in self.members)
        # Metric label and thread names: the group's name, or its one consumer's.
        self.label = self.name or member.event_type
        self.ident = f"{member.service_name}.{self.name}" if self.name else member.queue.name
        self._batch_sizes = metrics.EVENT_BATCH_SIZE.labels(member.service_name, self.label)

    def add(self, member, event, message, started) -> None:
        self._pending.append((member, event, message, started))
        if len(self._pending) >= self.max_batch:
            self._dispatch()
        elif self._timer is None:
            self._timer = self.container.spawn_managed_thread(
                self._dispatch_when_due, identifier=f"{self.ident}.batch_timer")

    def withdraw(self, member) -> list:
        """Take `member`'s waiting messages out of the group (it is closing)."""
        mine = [item for item in self._pending if item[0] is member]
        if mine:
            self._pending = [item for item in self._pending if item[0] is not member]
        return [message for _, _, message, _ in mine]

    def _dispatch_when_due(self):
        """Hand over what waits once its oldest message has waited max_wait."""
        try:
            while self._pending:  # a closing member takes its messages out
                due = self._pending[0][3] + self.max_wait
                now = time.perf_counter()
                if now < due:
                    eventlet.sleep(due - now)
                else:
                    self._dispatch()
        finally:
            self._timer = None

    def _dispatch(self):
        # No yield between taking the batch and spawning: greenthreads cannot interleave here.
        batch = self._pending[:self.max_batch]
        self._pending = self._pending[self.max_batch:]
        if not batch:
            return
        self._batch_sizes.observe(len(batch))
        correlation_ids = {event.correlation_id for _, event, _, _ in batch}
        context_data = {"correlation_id": correlation_ids.pop()} if len(correlation_ids) == 1 \
            else {}
        # The worker runs the handler of the oldest event's consumer (in a group, every
        # handler receives events of all the group's types).
        batch[0][0]._spawn(batch, context_data, partial(self._handle_batch_result, batch))

    def _handle_batch_result(self, batch, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            for member, _, _, started in batch:
                member._observe(started, "ok")
            # The members of a group share the container's one BatchQueueConsumer.
            batch[0][0].queue_consumer.ack_messages([message for _, _, message, _ in batch])
            return result, exc_info
        if len(batch) == 1:
            member, _, message, started = batch[0]
            return member.handle_result(message, started, worker_ctx, result, exc_info)
        member = batch[0][0]
        metrics.EVENT_BATCH_FALLBACKS.labels(member.service_name, self.label).inc()
        log.warning(
            "%s.%s: batch of %d failed (%s: %s); handling its events one at a time",
            member.service_name, self.label, len(batch), exc_info[0].__name__, exc_info[1],
        )
        # Not from this worker: its pool slot is still taken, and every slot could be held by
        # a failed batch waiting for one.
        self.container.spawn_managed_thread(
            partial(self._one_at_a_time, batch), identifier=f"{self.ident}.batch_fallback")
        return result, exc_info

    @staticmethod
    def _one_at_a_time(batch):
        # Each event through its own consumer: its handler, its queue's retries and dead letters.
        for item in batch:
            member, event, message, started = item
            member._spawn([item], {"correlation_id": event.correlation_id},
                          partial(member.handle_result, message, started))


class BatchEventConsumer(EventConsumer):
    """`@batch_event_consumer("intake", "complaint_received", max_batch=50, max_wait_ms=5)`:
    the handler receives a LIST of loaded `Event`s and handles them together (one transaction).

    Same queue, retry and dead-letter queues as `event_consumer`; malformed messages are parked
    at once, one by one, before any batch. Loaded events gather until `max_batch` are waiting or
    the oldest has waited `max_wait_ms`; then one worker receives them. If it returns, every
    message of the batch is acked. If it raises, each event of the batch is handled again alone
    (the handler receives a list of one) with exactly `event_consumer`'s semantics: retry queue
    with the attempts header, PermanentError or the last attempt parks it with the reason, the
    original is acked only once its copy is confirmed (the failed batch does not count as an
    attempt). So one poison event never holds back or parks the others; handlers must be
    idempotent for the whole batch (they are re-run on the events it did not get to commit).

    `batch_group="name"`: the consumers of one container with the same group gather their
    events together, from all their queues, in delivery order: one pending list, one timer (the
    smallest `max_batch` and shortest `max_wait_ms` of the group), one handler call per batch,
    the handler of the consumer of the batch's oldest event; so every handler of a group must
    accept events of all its types. Each message keeps its own queue: acked there, and in a
    fallback handled alone by its own consumer (its handler, retry and dead-letter queues).
    The batch metrics of a group carry the group's name as their `event_type` label.

    nameko's consumer cannot tell cheaply that the queue has nothing more to give, so a batch
    that is not full leaves after `max_wait_ms`: below capacity that is the latency added and
    batches hold about one event; when the service falls behind they fill. (A "nothing more is
    coming" flush was tried and dropped: RabbitMQ hands even a waiting backlog out with pauses
    of a millisecond or more and nothing unread on the socket, so no quiet interval tells an
    empty queue from a paused one; see docs/performance.md, session 4.)

    Messages waiting in a batch are unacknowledged: if the container stops or is killed they are
    requeued (or, with the connection gone, redelivered by the broker).

    `max_batch` and `max_wait_ms` may be overridden by the config keys EVENT_BATCH_MAX_SIZE and
    EVENT_BATCH_MAX_WAIT_MS (benchmarks compare batch sizes with them).
    """

    queue_consumer = BatchQueueConsumer()

    def __init__(self, producer: str, event_type: str, max_batch: int = 50,
                 max_wait_ms: float = 5, prefetch: int | None = None,
                 batch_group: str | None = None, **kw):
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self._prefetch = prefetch
        self.group = _BatchGroup(batch_group)
        super().__init__(producer, event_type, **kw)

    def setup(self):
        config = self.container.config
        self.max_batch = max(1, int(config.get("EVENT_BATCH_MAX_SIZE", self.max_batch)))
        self.max_wait = float(config.get("EVENT_BATCH_MAX_WAIT_MS", self.max_wait_ms)) / 1000
        # Two batches' worth: one being handled, the next gathering.
        self.prefetch = self._prefetch or 2 * self.max_batch
        self._closed = False
        super().setup()
        self.group.register(self)

    @property
    def _pending(self) -> list:
        """This consumer's messages waiting in its group (tests look at it)."""
        return [item for item in self.group._pending if item[0] is self]

    def stop(self):
        super().stop()  # cancels the broker consumer: nothing more is delivered
        self._close()

    def kill(self):
        self._close()

    def _close(self):
        """Give the waiting messages back to the broker; requeue any that still arrive."""
        self._closed = True
        for message in self.group.withdraw(self):
            self.queue_consumer.requeue_message(message)

    # messages --------------------------------------------------------------------------
    def handle_message(self, body, message):
        started = time.perf_counter()
        if self._closed:
            self.queue_consumer.requeue_message(message)
            return
        event = self._load_or_park(body, message, started)
        if event is None:
            return
        self.group.add(self, event, message, started)

    def _spawn(self, batch, context_data, handle_result):
        """A worker of this consumer's handler for `batch` ((member, event, message, started)
        items, possibly of other members of the group)."""
        try:
            self.container.spawn_worker(
                self, ([event for _, event, _, _ in batch],), {}, context_data=context_data,
                handle_result=handle_result,
            )
        except Exception:  # container being killed: let the broker redeliver them
            for member, _, message, _ in batch:
                member.queue_consumer.requeue_message(message)


batch_event_consumer = BatchEventConsumer.decorator


# -- RPC --------------------------------------------------------------------------------------


class ResilientRpcConsumer(RpcConsumer):
    """nameko's RPC consumer, except that a reply which cannot be published because the broker
    went away while the call was being handled no longer kills the whole container.

    nameko publishes the reply with 3 retries (about 12 s) and lets the error escape into the
    worker's result handling, which is fatal to the container: one call in flight during a
    broker outage took intake down for good (found by `make chaos`, docs/reliability.md). Here
    the reply is dropped and the request stays unacknowledged, so the broker hands it out again
    once the service has reconnected; the caller times out and retries as for any lost reply.
    """

    def handle_result(self, message, result, exc_info):
        try:
            return super().handle_result(message, result, exc_info)
        except (KombuOperationalError, AmqpConnectionError, OSError) as exc:
            log.warning("RPC reply not sent, the broker is unavailable (%s); the request will "
                        "be delivered again", exc)
            return result, exc_info


class ResilientRpc(Rpc):
    rpc_consumer = ResilientRpcConsumer()


rpc = ResilientRpc.decorator


__all__ = [
    "BatchEventConsumer",
    "Database",
    "DatabaseAccess",
    "Event",
    "EventConsumer",
    "Health",
    "PermanentError",
    "batch_event_consumer",
    "event_consumer",
    "rpc",
]
