"""notification: the nameko adapter. Plan deliveries for each lifecycle event, send them with the
configured providers, and sweep for deliveries that are due again.

A consumer only plans (one short transaction) and hands the sends to a bounded pool of
greenthreads, so a slow or hanging provider never holds the event consumers: what the pool
cannot take now, the sweep sends later.
"""

import logging
import time

import eventlet
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer
from nameko.web.handlers import http

from services.notification import handlers
from services.notification.db import metadata
from services.notification.domain.lifecycle import NotYetRouted
from services.notification.domain.render import TemplateCatalogue
from services.notification.metrics import (
    FALLBACKS,
    NOTIFICATIONS,
    OLDEST_PENDING,
    PARKED,
    PENDING,
    PROVIDER_SECONDS,
    RETRIES,
)
from services.notification.settings import Settings
from shared.nameko_ext import Database, Health, event_consumer
from shared.web import health_response, metrics_response

log = logging.getLogger(__name__)

NAME = "notification"
RPC_TIMEOUT = 5
STOP_GRACE = 5
CATALOGUE = TemplateCatalogue()


# The sweep sends due deliveries in batches of this size, for at most this many seconds a tick.
SWEEP_BATCH = 100
SWEEP_BUDGET = 30.0


class Sender(DependencyProvider):
    """Settings, one instance of each provider, and the pool that sends in the background."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.providers = self.settings.build_providers()
        self.pool = GreenPool(self.settings.send_concurrency)

    def stop(self):
        # Let sends in flight finish (their lease would otherwise delay them by a minute).
        try:
            with eventlet.Timeout(STOP_GRACE):
                self.pool.waitall()
        except eventlet.Timeout:
            for gt in list(self.pool.coroutines_running):
                gt.kill()

    def kill(self):
        for gt in list(self.pool.coroutines_running):
            gt.kill()

    def get_dependency(self, worker_ctx):
        return self

    def provider_for(self, audience: str, channel: str):
        return self.providers[self.settings.routes[(audience, channel)]]

    def dispatch(self, db, delivery_ids, resolve_address) -> int:
        """Send in the background as far as the pool has room; the sweep sends the rest."""
        spawned = 0
        for delivery_id in delivery_ids:
            if self.pool.free() == 0:
                break
            self.pool.spawn_n(self._send, db, delivery_id, resolve_address)
            spawned += 1
        return spawned

    def drain(self, db, fetch_due, resolve_address, budget: float) -> int:
        """Send due deliveries until none is left or `budget` seconds pass.

        `pool.spawn` waits for a free slot, so a backlog drains as fast as the providers
        answer, never faster than `send_concurrency` at once.
        """
        deadline = time.monotonic() + budget
        sent = 0
        while time.monotonic() < deadline:
            due = fetch_due(SWEEP_BATCH)
            for delivery_id in due:
                self.pool.spawn(self._send, db, delivery_id, resolve_address)
            sent += len(due)
            if len(due) < SWEEP_BATCH:
                break
        return sent

    def _send(self, db, delivery_id, resolve_address):
        try:
            outcome = handlers.send_one(
                db.unit_of_work, delivery_id, resolve_address=resolve_address,
                catalogue=CATALOGUE, provider_for=self.provider_for, settings=self.settings,
            )
        except Exception:
            # The database is unreachable, say: the delivery stays pending and its lease
            # expires, so the sweep tries again.
            log.exception("delivery %s: could not be sent now", delivery_id)
            return
        observe(outcome)


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
    intake = RpcProxy("intake")
    routing = RpcProxy("routing")

    @event_consumer("routing", "complaint_routed")
    def on_complaint_routed(self, event):
        self._plan_and_send(event)

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

    def _plan_and_send(self, event):
        try:
            pending = handlers.plan(self.db.unit_of_work, event, self.sender.settings)
        except NotYetRouted as exc:
            # Retried through the consumer's retry queues; routed normally arrives within ms.
            raise RuntimeError(f"waiting for complaint_routed: {exc}") from exc
        self.sender.dispatch(self.db, pending, self._address)

    @timer(interval=2)
    def sweep(self):
        """Send deliveries that are due (retries, or planned by a worker that died)."""
        with self.db.session() as session:
            pending, oldest = handlers.pending_stats(session)
        PENDING.set(pending)
        OLDEST_PENDING.set(oldest)

        def fetch_due(limit):
            with self.db.session() as session:
                return handlers.due_deliveries(session, limit=limit)

        self.sender.drain(self.db, fetch_due, self._address, SWEEP_BUDGET)

    def _address(self, delivery: dict) -> str | None:
        """Look the address up at send time: personal data is never stored here."""
        channel = delivery["channel"]
        kind, _, unit_code = delivery["recipient"].partition(":")
        with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
            if delivery["audience"] == "unit":
                unit = self.routing.get_unit_contacts(unit_code)
                if unit is None:
                    return None
                if kind == "head":
                    unit = unit.get("head") or {}
                return unit.get("whatsapp") if channel in ("whatsapp", "sms") else unit.get("email")
            contact = self.intake.get_contact(delivery["complaint_id"])
        if contact is None:
            return None
        return contact.get("email") if channel == "email" else contact.get("phone")

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        return metrics_response()
