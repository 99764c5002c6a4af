"""notification: the nameko adapter. Plan deliveries for each routed complaint, send them with
the configured providers, and sweep for deliveries that are due again."""

from pathlib import Path

import eventlet
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from nameko.timer import timer
from nameko.web.handlers import http

from services.notification import handlers
from services.notification.db import metadata
from services.notification.domain.render import TemplateCatalogue
from services.notification.metrics import NOTIFICATIONS
from services.notification.providers import FileProvider
from shared.nameko_ext import Database, Health, event_consumer
from shared.web import health_response, metrics_response

NAME = "notification"
RPC_TIMEOUT = 5
CATALOGUE = TemplateCatalogue()


class NotificationService:
    name = NAME

    db = Database(metadata)
    broker = Health()
    config = Config()
    intake = RpcProxy("intake")
    routing = RpcProxy("routing")

    @event_consumer("routing", "complaint_routed")
    def on_complaint_routed(self, event):
        pending = handlers.plan(self.db.unit_of_work, event, self.config["PUBLIC_BASE_URL"])
        self._send(pending)

    @timer(interval=2)
    def sweep(self):
        """Send deliveries that are due (retries, or planned by a worker that died)."""
        with self.db.session() as session:
            due = handlers.due_deliveries(session)
        self._send(due)

    def _send(self, delivery_ids):
        if not delivery_ids:
            return
        provider = FileProvider(Path(self.config.get("DUMAS_VAR_DIR", "var")) / "outbox")
        outcomes = handlers.send(
            self.db.unit_of_work,
            delivery_ids,
            resolve_address=self._address,
            catalogue=CATALOGUE,
            provider_for=lambda channel: provider,
        )
        for o in outcomes:
            if o.status != "skipped":
                NOTIFICATIONS.labels(o.provider, o.audience, o.status).inc()

    def _address(self, delivery: dict) -> str | None:
        """Look the address up at send time: personal data is never stored here."""
        channel = delivery["channel"]
        with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
            if delivery["audience"] == "unit":
                unit = self.routing.get_unit_contacts(delivery["recipient"].split(":", 1)[1])
                if unit is None:
                    return None
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
