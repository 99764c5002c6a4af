"""reporting: the nameko adapter. Every event goes into the read model; statistics over HTTP."""

from nameko.web.handlers import http

from services.reporting import handlers
from services.reporting.db import metadata
from shared.nameko_ext import Database, Health, event_consumer
from shared.web import endpoint, health_response, json_response, metrics_response

NAME = "reporting"


class ReportingService:
    name = NAME

    db = Database(metadata)
    broker = Health()

    @event_consumer("intake", "complaint_received")
    def on_complaint_received(self, event):
        handlers.record(self.db.unit_of_work, event)

    @event_consumer("routing", "complaint_routed")
    def on_complaint_routed(self, event):
        handlers.record(self.db.unit_of_work, event)

    @event_consumer("notification", "notification_sent")
    def on_notification_sent(self, event):
        handlers.record(self.db.unit_of_work, event)

    @event_consumer("notification", "notification_failed")
    def on_notification_failed(self, event):
        handlers.record(self.db.unit_of_work, event)

    @http("GET", "/api/v1/stats")
    @endpoint(NAME, "/api/v1/stats")
    def stats(self, request):
        with self.db.session() as session:
            return json_response(handlers.stats(session))

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        return metrics_response()
