"""notification: the nameko adapter. Plan deliveries for each lifecycle event, send them with the
configured providers, and sweep for deliveries that are due again.

A consumer only plans (one short transaction, which also leases the deliveries it will send) and
hands the sends to greenthreads on a bounded number of send slots, so a slow or hanging provider
never holds the event consumers: what finds no free slot now, the sweep sends later.
"""

import logging
import math
import time
from functools import partial

import eventlet
from eventlet.greenpool import GreenPool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer

from services.notification import handlers
from services.notification.batching import Batcher
from services.notification.db import metadata
from services.notification.domain.lifecycle import NotYetRouted
from services.notification.domain.render import TemplateCatalogue
from services.notification.metrics import (
    CONTACTS_PER_RPC,
    FALLBACKS,
    MARK_SENT_BATCH_SIZE,
    NOTIFICATIONS,
    OLDEST_PENDING,
    PARKED,
    PENDING,
    PROVIDER_SECONDS,
    RETRIES,
    SEND_SLOTS_IN_USE,
)
from services.notification.settings import Settings
from shared.nameko_ext import Database, Health, batch_event_consumer, event_consumer, http
from shared.web import health_response, metrics_response

log = logging.getLogger(__name__)

NAME = "notification"
RPC_TIMEOUT = 5
STOP_GRACE = 5
CATALOGUE = TemplateCatalogue()


# The sweep sends due deliveries in batches of this size, for at most this many seconds a tick.
SWEEP_BATCH = 100
SWEEP_BUDGET = 30.0
# The sweep's timer ticks every SWEEP_TICK seconds, but it looks in the database only when a
# delivery may be due: at the earliest moment a pending delivery becomes due (its
# next_attempt_at, or its lease's end), at the next tick after this process scheduled a retry,
# planned a fallback or lost a send (`Sender.look_again_at`), and at least every
# NOTIFICATION_SWEEP_IDLE_SECONDS (deliveries another replica planned and left behind). An idle
# process thus asks the database once per idle interval instead of twice per tick.
SWEEP_TICK = 2
SWEEP_IDLE_SECONDS = 10.0
# Seconds a unit's official contacts fetched from routing are reused.
UNIT_CONTACTS_TTL = 60.0
# complaint_routed events planned together, in one transaction: at most this many, and no
# waiting for company (config: EVENT_BATCH_MAX_SIZE, EVENT_BATCH_MAX_WAIT_MS): what the broker
# has already delivered when the batch timer first runs is one batch, so a backlog is planned
# in batches while a lone event costs no added latency.
ROUTED_BATCH = 20
ROUTED_BATCH_WAIT_MS = 0
# Sends whose providers accepted their messages are marked sent together, in one transaction
# (handlers.mark_sent): at most this many, and the first waits at most this long for the sends
# still running to finish (NOTIFICATION_MARK_SENT_BATCH, NOTIFICATION_MARK_SENT_MAX_WAIT_MS).
# The wait ends as soon as every running send is waiting too, so a lone send is not held.
MARK_SENT_BATCH = 50
MARK_SENT_MAX_WAIT_MS = 10
# Complainant contacts looked up in one intake.get_contacts call: every send that needs one
# while no call is under way, at most this many (no added wait).
CONTACTS_BATCH = 100


class Sender(DependencyProvider):
    """Settings, one instance of each provider, the send slots, and the unit contacts cache.

    At most ``send_concurrency`` sends run at once (a semaphore of send slots). A consumer that
    plans deliveries reserves free slots once its plan is known, and the deliveries it will send
    itself are leased in the planning transaction (see handlers.plan); what finds no free slot
    is sent by a drainer started at once (`kick`), which takes each slot as soon as a send gives
    it back, oldest delivery first; the 2-second sweep runs the same drainer for retries.
    """

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.providers = self.settings.build_providers()
        self.slots = Semaphore(self.settings.send_concurrency)
        # Tracks the sends in flight (for stop/kill); the semaphore bounds them.
        self.pool = GreenPool(max(1000, self.settings.send_concurrency))
        config = self.container.config
        self.unit_contacts = TtlCache(float(
            config.get("NOTIFICATION_UNIT_CONTACTS_TTL", UNIT_CONTACTS_TTL)))
        self._draining = False
        self._drain_again = False
        # When the sweep looks in the database next (monotonic): at its first tick.
        self.sweep_idle = float(config.get("NOTIFICATION_SWEEP_IDLE_SECONDS", SWEEP_IDLE_SECONDS))
        self.sweep_at = 0.0
        # Sends running now (from taking their slot to their outcome), for the mark batcher.
        self.running = 0
        self.marks = Batcher(
            self._mark_sent,
            max_size=int(config.get("NOTIFICATION_MARK_SENT_BATCH", MARK_SENT_BATCH)),
            max_wait=float(config.get("NOTIFICATION_MARK_SENT_MAX_WAIT_MS",
                                      MARK_SENT_MAX_WAIT_MS)) / 1000,
            ready=lambda waiting: waiting >= self.running,
            observe=MARK_SENT_BATCH_SIZE.observe, name="mark sent")
        self.contacts = Batcher(self._fetch_contacts, max_size=CONTACTS_BATCH,
                                observe=CONTACTS_PER_RPC.observe, name="contacts")

    def stop(self):
        # Let sends in flight finish (their lease would otherwise delay them by a minute).
        try:
            with eventlet.Timeout(STOP_GRACE):
                self.pool.waitall()
        except eventlet.Timeout:
            for gt in list(self.pool.coroutines_running):
                gt.kill()
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                try:
                    close()  # kept SMTP connections
                except Exception as exc:
                    log.warning("closing provider %s: %s", provider.name, exc)

    def kill(self):
        for gt in list(self.pool.coroutines_running):
            gt.kill()

    def get_dependency(self, worker_ctx):
        return self

    def provider_for(self, audience: str, channel: str):
        return self.providers[self.settings.routes[(audience, channel)]]

    def reserve(self, wanted: int) -> int:
        """Take up to `wanted` free send slots without waiting; how many were taken."""
        taken = 0
        while taken < wanted and self.slots.acquire(blocking=False):
            taken += 1
        return taken

    def release(self, count: int) -> None:
        for _ in range(count):
            self.slots.release()

    def in_use(self) -> int:
        return self.settings.send_concurrency - self.slots.counter

    def send_leased(self, db, rows, resolve_address) -> None:
        """Send deliveries leased while planning, each on a slot reserved for it."""
        for row in rows:
            self.pool.spawn_n(self._run, handlers.send_leased, db, row, resolve_address)

    def dispatch(self, db, delivery_ids, resolve_address) -> int:
        """Send in the background as far as there are free slots; the sweep sends the rest."""
        spawned = 0
        for delivery_id in delivery_ids:
            if not self.slots.acquire(blocking=False):
                break
            self.pool.spawn_n(self._run, handlers.send_one, db, delivery_id, resolve_address)
            spawned += 1
        return spawned

    def kick(self, db, lease_due, resolve_address) -> None:
        """Drain due deliveries now, in the background, instead of at the next sweep: planned
        deliveries that found no free slot would otherwise wait up to two seconds while slots
        free up. One drainer at a time (two would fetch the same rows and race for their
        leases); a kick while it runs makes it look once more before it ends."""
        if self._try_start_drain():
            self.container.spawn_managed_thread(
                partial(self._drain_owned, db, lease_due, resolve_address, SWEEP_BUDGET),
                identifier="notification.drain")

    def drain_exclusive(self, db, lease_due, resolve_address, budget: float) -> int:
        """`drain`, unless another drainer runs (then it is asked to look once more)."""
        if not self._try_start_drain():
            return 0
        return self._drain_owned(db, lease_due, resolve_address, budget)

    def _try_start_drain(self) -> bool:
        """Whether the caller now owns the drain (and must run `_drain_owned`); if a drainer
        runs already, it is asked to look once more before it ends."""
        if self._draining:
            self._drain_again = True
            return False
        self._draining = True
        return True

    def _drain_owned(self, db, lease_due, resolve_address, budget: float) -> int:
        sent = 0
        try:
            while True:
                self._drain_again = False
                sent += self.drain(db, lease_due, resolve_address, budget)
                if not self._drain_again:
                    return sent
        except Exception:
            log.exception("draining due deliveries failed; the sweep tries again")
            return sent
        finally:
            self._draining = False
            # A drain ends when nothing more is due, when its budget is spent or on an error:
            # the sweep looks again at its next tick (a no-op look when nothing is left).
            self.look_again_at(time.monotonic())

    def sweep(self, db, lease_due, resolve_address) -> None:
        """One tick of the sweep: when a delivery may be due, look in the database and drain
        what is due; then schedule the next look (on an error: the next tick)."""
        if not self.sweep_due():
            return
        self.sweep_at = math.inf  # hints that arrive during this look lower it again
        look_again = time.monotonic()
        try:
            look_again = self._sweep_look(db, lease_due, resolve_address)
        finally:
            self.look_again_at(look_again)

    def sweep_due(self) -> bool:
        return time.monotonic() >= self.sweep_at

    def _sweep_look(self, db, lease_due, resolve_address) -> float:
        """Drain what is due; when (monotonic) the sweep should look again."""
        with db.session() as session:
            due_in = handlers.next_due_in(session)
        now = time.monotonic()
        if due_in is None:  # nothing pending
            return now + self.sweep_idle
        if due_in > 0:
            return now + min(due_in, self.sweep_idle)
        self.drain_exclusive(db, lease_due, resolve_address, SWEEP_BUDGET)
        return time.monotonic()  # sent what was due: look again at the next tick

    def look_again_at(self, when: float) -> None:
        """Have the sweep look in the database at its first tick from `when` (monotonic) on."""
        self.sweep_at = min(self.sweep_at, when)

    def drain(self, db, lease_due, resolve_address, budget: float) -> int:
        """Send due deliveries until none is left or `budget` seconds pass.

        Waits for a free send slot, takes every other free one too, and leases as many due
        deliveries as it holds slots in one statement (`lease_due(n)`, handlers.lease_due), so
        a backlog drains as fast as the providers answer, never faster than `send_concurrency`
        at once, without a lease transaction per delivery.
        """
        deadline = time.monotonic() + budget
        sent = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.slots.acquire(timeout=left):
                return sent
            free = 1 + self.reserve(SWEEP_BATCH - 1)
            try:
                rows = lease_due(free)
            except BaseException:
                self.release(free)
                raise
            if len(rows) < free:
                self.release(free - len(rows))
            for row in rows:
                self.pool.spawn_n(self._run, handlers.send_leased, db, row, resolve_address)
            sent += len(rows)
            if len(rows) < free:  # nothing more is due now
                return sent

    def _run(self, send, db, delivery, resolve_address):
        """One send on a slot already taken; the slot is given back whatever happens."""
        self.running += 1
        try:
            outcome = send(
                db.unit_of_work, delivery, resolve_address=resolve_address,
                catalogue=CATALOGUE, provider_for=self.provider_for, settings=self.settings,
                mark=lambda accepted: self.marks.submit((db.unit_of_work, accepted)),
            )
        except Exception:
            # The database is unreachable, say: the delivery stays pending and its lease
            # expires, so the sweep tries again (also when the provider accepted it and only
            # the mark failed: sent again, at least once).
            delivery_id = delivery["id"] if isinstance(delivery, dict) else delivery
            log.exception("delivery %s: could not be sent now", delivery_id)
            self.look_again_at(time.monotonic())  # (it finds when the lease ends)
            return
        finally:
            self.running -= 1
            self.slots.release()
        if outcome.status in ("retry", "failed"):
            # A retry later, or a fallback delivery due now: the sweep's next look finds when.
            self.look_again_at(time.monotonic())
        observe(outcome)

    @staticmethod
    def _mark_sent(items):
        """The mark batcher's flush: one transaction for every accepted send of the batch."""
        return handlers.mark_sent(items[0][0], [accepted for _, accepted in items])

    def contact(self, intake, complaint_id: str) -> dict | None:
        """The complainant's contact, asked for in one intake.get_contacts call together with
        the other sends that need one now (`intake`: the asking worker's RPC proxy)."""
        return self.contacts.submit((intake, complaint_id))

    def _fetch_contacts(self, items) -> list[dict | None]:
        """The contacts batcher's flush. Personal data: only handed to the waiting sends, never
        kept (nor logged)."""
        intake = items[0][0]
        ids = list(dict.fromkeys(complaint_id for _, complaint_id in items))
        with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
            found = intake.get_contacts(ids)
        return [found.get(complaint_id) for _, complaint_id in items]


class TtlCache:
    """A small in-process cache with a time to live, for public data fetched over RPC."""

    def __init__(self, ttl: float, clock=time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._entries: dict = {}

    def get(self, key, fetch):
        """The cached value of `key`, or `fetch()` (cached for `ttl` seconds; not on error)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = fetch()
        if self.ttl > 0:
            if len(self._entries) > 10_000:  # a bound, in case of very many units
                self._entries.clear()
            self._entries[key] = (now + self.ttl, value)
        return value


def observe(o: handlers.Outcome) -> None:
    if o.status == "skipped":
        return
    NOTIFICATIONS.labels(o.provider, o.audience, o.status).inc()
    if o.seconds is not None:
        PROVIDER_SECONDS.labels(o.provider, o.status).observe(o.seconds)
    if o.status == "retry":
        RETRIES.labels(o.provider, o.audience).inc()
    elif o.status == "failed":
        PARKED.labels(o.provider, o.audience).inc()
        if o.fallback_to:
            FALLBACKS.labels(o.audience, o.channel, o.fallback_to).inc()


class NotificationService:
    name = NAME

    db = Database(metadata)
    broker = Health()
    sender = Sender()
    # Requests transient and without publisher confirms (docs/events.md, "RPC"): a request lost
    # with the broker ends in the caller's timeout, as any failed call, so persisting it buys
    # nothing; it saves the broker a message-store write and the caller a confirm per call.
    intake = RpcProxy("intake", delivery_mode=1, use_confirms=False)
    routing = RpcProxy("routing", delivery_mode=1, use_confirms=False)

    # One complaint_routed per new complaint: under load they come in bursts, and planning a
    # batch in one transaction saves a commit and most round trips per complaint.
    @batch_event_consumer("routing", "complaint_routed", max_batch=ROUTED_BATCH,
                          max_wait_ms=ROUTED_BATCH_WAIT_MS)
    def on_complaint_routed(self, events):
        self._plan_and_send(events)

    @event_consumer("routing", "complaint_acknowledged")
    def on_complaint_acknowledged(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_info_requested")
    def on_complaint_info_requested(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_responded")
    def on_complaint_responded(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_resolved")
    def on_complaint_resolved(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_closed")
    def on_complaint_closed(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_returned")
    def on_complaint_returned(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_sla_warning")
    def on_complaint_sla_warning(self, event):
        self._plan_and_send(event)

    @event_consumer("routing", "complaint_sla_breached")
    def on_complaint_sla_breached(self, event):
        self._plan_and_send(event)

    @event_consumer("intake", "complaint_info_added")
    def on_complaint_info_added(self, event):
        self._plan_and_send(event)

    def _plan_and_send(self, events):
        """Plan one event, or a batch of them (a list) in one transaction, and send."""
        sender = self.sender
        try:
            # Deliveries for which a send slot is free are leased in the plan's transaction
            # and sent by this process at once, each on its slot.
            planned = handlers.plan_batch(
                self.db.unit_of_work, events if isinstance(events, list) else [events],
                sender.settings, slots=sender)
        except NotYetRouted as exc:
            # Retried through the consumer's retry queues; routed normally arrives within ms.
            raise RuntimeError(f"waiting for complaint_routed: {exc}") from exc
        sender.send_leased(self.db, planned.leased, self._address)
        if sender.dispatch(self.db, planned.pending, self._address) < len(planned.pending):
            sender.kick(self.db, self._lease_due, self._address)

    @timer(interval=SWEEP_TICK)
    def sweep(self):
        """Send deliveries that are due (retries, fallbacks, or planned by a worker that died);
        between the moments one may be due, a tick does nothing (see SWEEP_TICK)."""
        self.sender.sweep(self.db, self._lease_due, self._address)

    def _lease_due(self, limit):
        return handlers.lease_due(self.db.unit_of_work, limit, self.sender.settings.lease)

    def _address(self, delivery: dict) -> str | None:
        """Look the address up at send time: personal data is never stored here."""
        channel = delivery["channel"]
        kind, _, unit_code = delivery["recipient"].partition(":")
        with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
            if delivery["audience"] == "unit":
                # Public office data: cached briefly (NOTIFICATION_UNIT_CONTACTS_TTL), so a
                # unit's messages cost no RPC each. The complainant's contact is personal data:
                # fetched at every send, never kept.
                unit = self.sender.unit_contacts.get(
                    unit_code, lambda: self.routing.get_unit_contacts(unit_code))
                if unit is None:
                    return None
                if kind == "head":
                    unit = unit.get("head") or {}
                return unit.get("whatsapp") if channel in ("whatsapp", "sms") else unit.get("email")
            # Sends that need a contact at the same time share one intake.get_contacts call.
            contact = self.sender.contact(self.intake, delivery["complaint_id"])
        if contact is None:
            return None
        return contact.get("email") if channel == "email" else contact.get("phone")

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        # Read at each scrape (not by the sweep, which looks in the database only when a
        # delivery may be due).
        with self.db.session() as session:
            pending, oldest = handlers.pending_stats(session)
        PENDING.set(pending)
        OLDEST_PENDING.set(oldest)
        SEND_SLOTS_IN_USE.set(self.sender.in_use())
        return metrics_response()
