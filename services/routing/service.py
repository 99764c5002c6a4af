"""routing: the nameko adapter. Consume received complaints, decide, record, announce."""

from nameko.rpc import rpc
from nameko.web.handlers import http

from services.routing import accounts, handlers
from services.routing.db import metadata
from services.routing.metrics import ROUTED
from services.routing.registry_cache import RegistryCache
from shared.nameko_ext import Database, Health, event_consumer
from shared.web import endpoint, health_response, json_response, metrics_response

NAME = "routing"


class RoutingService:
    name = NAME

    db = Database(metadata)
    registry = RegistryCache()
    broker = Health()

    @event_consumer("intake", "complaint_received")
    def on_complaint_received(self, event):
        decision = handlers.route_complaint(self.db.unit_of_work, self.registry.current(), event)
        if decision is not None:
            ROUTED.labels(decision.unit_code, decision.rule).inc()

    @rpc
    def get_unit_contacts(self, unit_code):
        """Official contacts of a unit (and its head), for notification at send time."""
        unit = self.registry.current().get(unit_code)
        if unit is None:
            return None
        return {
            "code": unit.code,
            "name": unit.name,
            "email": unit.contacts.email,
            "whatsapp": unit.contacts.whatsapp,
            "head": None
            if unit.head is None
            else {"email": unit.head.email, "whatsapp": unit.head.whatsapp},
        }

    @rpc
    def authenticate(self, username, password):
        """Check a person's credentials (any service's sign-in page calls this)."""
        with self.db.session() as session:
            result = accounts.authenticate(session, username, password)
            session.commit()
        return result

    @http("GET", "/api/v1/units")
    @endpoint(NAME, "/api/v1/units")
    def units(self, request):
        registry = self.registry.current()
        return json_response(
            {
                "units": [
                    {
                        "code": u.code,
                        "name": u.name,
                        "type": u.type,
                        "stage": u.stage,
                        "kecamatan_code": u.kecamatan_code,
                    }
                    for u in sorted(registry.units(), key=lambda u: (u.type != "desk", u.code))
                ]
            }
        )

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        return metrics_response()
