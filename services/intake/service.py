"""intake: the nameko adapter. Parse the request, call handlers (domain + unit of work), answer."""

from nameko.dependency_providers import Config
from nameko.rpc import rpc
from nameko.web.handlers import http

from services.intake import handlers
from services.intake.db import metadata
from services.intake.domain.validation import (
    ANONYMOUS_NOTICE,
    SubmissionInvalid,
    validate_submission,
)
from services.intake.metrics import RECEIVED
from shared.catalogue import CATEGORIES, CHANNELS
from shared.nameko_ext import Database, Health, PermanentError, event_consumer
from shared.web import (
    HttpError,
    endpoint,
    health_response,
    json_response,
    metrics_response,
    read_json,
)

NAME = "intake"


class IntakeService:
    name = NAME

    db = Database(metadata)
    broker = Health()
    config = Config()

    @http("POST", "/api/v1/complaints")
    @endpoint(NAME, "/api/v1/complaints")
    def submit(self, request):
        payload = read_json(request)
        channel = payload.get("channel", "web") if isinstance(payload, dict) else "web"
        try:
            clean = validate_submission(payload)
        except SubmissionInvalid as exc:
            RECEIVED.labels(_channel_label(channel), "invalid").inc()
            raise HttpError(400, exc.code, exc.message, details=exc.errors) from None
        accepted = handlers.submit_complaint(self.db.unit_of_work, clean)
        RECEIVED.labels(clean["channel"], "accepted").inc()
        base = self.config["PUBLIC_BASE_URL"].rstrip("/")
        body = {
            "tracking_code": accepted.tracking_code,
            "status": accepted.status,
            "received_at": accepted.received_at.isoformat(),
            "tracking_url": f"{base}/lacak/{accepted.tracking_code}",
            "message": (
                "Pengaduan Anda sudah kami terima. Simpan kode pelacakan "
                f"{accepted.tracking_code} untuk memantau perkembangannya."
            ),
        }
        if clean.get("personal_data_dropped"):
            body["notice"] = ANONYMOUS_NOTICE
        return json_response(
            body, 201, {"Location": f"/api/v1/complaints/{accepted.tracking_code}"}
        )

    @http("GET", "/api/v1/complaints/<string:code>")
    @endpoint(NAME, "/api/v1/complaints/<code>")
    def track(self, request, code):
        with self.db.session() as session:
            view = handlers.find_public(session, code)
        if view is None:
            raise HttpError(
                404, "not_found", "Kode pelacakan tidak ditemukan. Periksa kembali kode Anda."
            )
        return json_response(view)

    @http("GET", "/api/v1/categories")
    @endpoint(NAME, "/api/v1/categories")
    def categories(self, request):
        return json_response(
            {
                "categories": [
                    {"code": c.code, "name": c.name, "description": c.description}
                    for c in CATEGORIES
                ]
            }
        )

    @rpc
    def get_contact(self, complaint_id):
        """Personal contact for notification at send time; never logged, never in events."""
        with self.db.session() as session:
            return handlers.contact_for(session, complaint_id)

    @event_consumer("routing", "complaint_routed")
    def on_complaint_routed(self, event):
        try:
            handlers.apply_status_event(self.db.unit_of_work, event)
        except handlers.UnknownComplaint as exc:
            raise PermanentError(f"unknown complaint {exc}") from exc

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        return metrics_response()


def _channel_label(channel) -> str:
    return channel if isinstance(channel, str) and channel in CHANNELS else "unknown"
