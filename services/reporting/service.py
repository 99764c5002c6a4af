"""reporting: the nameko adapter. Every event goes into the read model; statistics, pages and
exports over HTTP."""

import secrets
import time
from datetime import date
from urllib.parse import urlencode

import eventlet
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from services.reporting import exports, handlers, pages, queries
from services.reporting.db import metadata
from services.reporting.metrics import EXPORTS, SIGN_INS, STATS_PLANS, STATS_QUERY_SECONDS
from services.reporting.openapi import DOCUMENT_PATH
from services.reporting.openapi import build_spec as build_openapi
from shared import deadletters
from shared.auth import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    check_csrf,
    csrf_token,
    issue_session,
    read_session,
)
from shared.metrics import DeadLetterDepthCollector
from shared.nameko_ext import Database, Health, LoginGuard, batch_event_consumer, http
from shared.web import (
    HttpError,
    endpoint,
    health_response,
    html_response,
    json_response,
    metrics_response,
    secure_cookies,
    set_session_cookie,
)

NAME = "reporting"
LOGIN_CSRF_COOKIE = "dumas_login_csrf"
RPC_TIMEOUT = 5


class DeadLetterDepths(DependencyProvider):
    """Publishes the depth of every dead-letter queue on /metrics (one service is enough:
    reporting registers it)."""

    def setup(self):
        uri = self.container.config["AMQP_URI"]
        self.collector = DeadLetterDepthCollector(lambda: deadletters.depths(uri))

    def start(self):
        self.collector.register()

    def stop(self):
        self.collector.unregister()

    kill = stop


# The consumers of all sixteen queues gather into one batch.
EVENT_BATCH_GROUP = "all_events"


def _consumer(producer, event_type):
    # Batched, all queues together: the events waiting in any of reporting's queues (up to 50,
    # gathered for at most 250 ms) are recorded in one transaction, whatever their types
    # (record_many takes them in any order); a batch that fails is retried one event at a time,
    # each through its own queue's consumer. Any of the sixteen handlers may receive the batch.
    def on_events(self, events):
        handlers.record_many(self.db.unit_of_work, events)

    on_events.__name__ = f"on_{event_type}"
    return batch_event_consumer(producer, event_type, batch_group=EVENT_BATCH_GROUP)(on_events)


def _page_error(exc: HttpError, session) -> Response:
    titles = {401: "Perlu masuk", 403: "Akses ditolak", 400: "Permintaan tidak valid"}
    return html_response(
        pages.render("error.html.j2", title=titles.get(exc.status, "Terjadi kesalahan"),
                     message=exc.message, session=session,
                     csrf=csrf_token(session) if session else ""),
        status=exc.status,
    )


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/dasbor"


class ReportingService:
    name = NAME

    db = Database(metadata)
    broker = Health()
    routing = RpcProxy("routing", delivery_mode=1, use_confirms=False)  # docs/events.md, "RPC"
    dead_letters = DeadLetterDepths()
    login_guard = LoginGuard(NAME)
    config = Config()

    # Every event, one consumer queue each (reporting.<event_type>), in batches of all types.
    on_complaint_received = _consumer("intake", "complaint_received")
    on_complaint_info_added = _consumer("intake", "complaint_info_added")
    on_complaint_rated = _consumer("intake", "complaint_rated")
    on_complaint_reopened = _consumer("intake", "complaint_reopened")
    on_complaint_routed = _consumer("routing", "complaint_routed")
    on_complaint_acknowledged = _consumer("routing", "complaint_acknowledged")
    on_complaint_info_requested = _consumer("routing", "complaint_info_requested")
    on_complaint_responded = _consumer("routing", "complaint_responded")
    on_complaint_resolved = _consumer("routing", "complaint_resolved")
    on_complaint_closed = _consumer("routing", "complaint_closed")
    on_complaint_returned = _consumer("routing", "complaint_returned")
    on_complaint_sla_warning = _consumer("routing", "complaint_sla_warning")
    on_complaint_sla_breached = _consumer("routing", "complaint_sla_breached")
    on_unit_stage_changed = _consumer("routing", "unit_stage_changed")
    on_notification_sent = _consumer("notification", "notification_sent")
    on_notification_failed = _consumer("notification", "notification_failed")

    # -- helpers ----------------------------------------------------------------------------
    def _stats(self, query, view):
        started = time.perf_counter()
        with self.db.session() as session:
            result = handlers.stats(session, query)
        STATS_QUERY_SECONDS.labels(view).observe(time.perf_counter() - started)
        STATS_PLANS.labels(handlers.plan(query)).inc()
        return result

    @staticmethod
    def _session(request):
        return read_session(request.cookies.get(SESSION_COOKIE))

    # -- API --------------------------------------------------------------------------------
    @http("GET", "/api/v1/stats")
    @endpoint(NAME, "/api/v1/stats")
    def stats(self, request):
        """Aggregates for a period and filters. Anonymous: the public view (whole office);
        signed-in staff: everything in their scope, including per-unit SLA compliance."""
        query = queries.parse(request.args)
        session = self._session(request)
        if session is None:
            return json_response(queries.public_view(self._stats(queries.public(query), "api")))
        queries.require_staff(session)
        return json_response(self._stats(queries.scoped(query, session), "api"))

    @http("GET", "/api/openapi/reporting.json")
    @endpoint(NAME, DOCUMENT_PATH)
    def openapi(self, request):
        return json_response(build_openapi(self.config.get("PUBLIC_BASE_URL", "/").rstrip("/")
                                           or "/"))

    # -- pages ------------------------------------------------------------------------------
    @http("GET", "/")
    def index(self, request):
        return Response(status=303, headers={"Location": "/statistik"})

    @http("GET", "/statistik")
    @endpoint(NAME, "/statistik")
    def public_page(self, request):
        session = self._session(request)
        try:
            query = queries.public(queries.parse(request.args))
        except HttpError as exc:
            return _page_error(exc, session)
        stats = queries.public_view(self._stats(query, "public"))
        return html_response(pages.render(
            "public.html.j2", stats=stats, args=request.args, action="/statistik",
            session=session, csrf=csrf_token(session) if session else "", locked_unit=None))

    @http("GET", "/dasbor")
    @endpoint(NAME, "/dasbor")
    def dashboard(self, request):
        session = self._session(request)
        if session is None:
            return Response(status=303, headers={
                "Location": "/masuk?" + urlencode({"next": request.full_path.rstrip("?")})})
        try:
            queries.require_staff(session)
            query = queries.scoped(queries.parse(request.args), session)
        except HttpError as exc:
            return _page_error(exc, session)
        stats = self._stats(query, "dashboard")
        with self.db.session() as db:
            open_list = handlers.open_complaints(db, query)
        locked = session.unit_code if session.role == "unit_head" else None
        units = [locked] if locked else [u for u in stats["sla_by_unit"] if u != "unrouted"]
        return html_response(pages.render(
            "dashboard.html.j2", stats=stats, args=request.args, action="/dasbor",
            session=session, csrf=csrf_token(session), units=units, locked_unit=locked,
            open_complaints=open_list, query_string=urlencode(request.args),
            can_recap=session.role in queries.RECAP_ROLES,
            this_month=date.today().strftime("%Y-%m")))

    @http("GET", "/masuk")
    @endpoint(NAME, "GET /masuk")
    def sign_in_form(self, request):
        return self._sign_in_page(request.args.get("next"))

    def _sign_in_page(self, next_url, error=None, username="", status=200):
        token = secrets.token_urlsafe(24)
        response = html_response(pages.render(
            "signin.html.j2", login_csrf=token, next=_safe_next(next_url), error=error,
            username=username, session=None), status=status)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True,
                            samesite="Strict", secure=secure_cookies(), path="/masuk")
        return response

    @http("POST", "/masuk")
    @endpoint(NAME, "/masuk")
    def sign_in(self, request):
        form = request.form
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not cookie or not secrets.compare_digest(cookie.encode(),
                                                    form.get("csrf_token", "").encode()):
            SIGN_INS.labels("csrf").inc()
            return self._sign_in_page(form.get("next"), "Formulir kedaluwarsa. Silakan coba lagi.",
                                      status=403)
        username = form.get("username", "").strip()[:64]
        password = form.get("password", "")[:256]
        refusal = self.login_guard.check(request)
        if refusal is None:
            try:
                with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
                    result = self.routing.authenticate(username, password)
            except Exception:
                SIGN_INS.labels("unavailable").inc()
                return self._sign_in_page(
                    form.get("next"),
                    "Layanan akun sedang tidak tersedia. Coba lagi sebentar lagi.",
                    username, status=503)
            refusal = self.login_guard.record(request, result)
        if refusal is not None:
            SIGN_INS.labels("locked" if refusal.scope == "account" else "throttled").inc()
            response = self._sign_in_page(form.get("next"), refusal.message, username,
                                          status=429)
            response.headers.update(refusal.headers)
            return response
        if not result or not result.get("ok"):
            SIGN_INS.labels("invalid").inc()
            return self._sign_in_page(form.get("next"), "Nama pengguna atau kata sandi salah.",
                                      username, status=401)
        if result["role"] not in queries.STAFF_ROLES:
            SIGN_INS.labels("forbidden").inc()
            return self._sign_in_page(
                form.get("next"), "Akun Anda tidak berhak melihat laporan.", username, status=403)
        SIGN_INS.labels("ok").inc()
        _, cookie_value = issue_session(result["username"], result["role"], result["unit_code"],
                                        result["display_name"])
        response = Response(status=303, headers={"Location": _safe_next(form.get("next"))})
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/masuk")
        return set_session_cookie(response, SESSION_COOKIE, cookie_value, SESSION_LIFETIME)

    @http("POST", "/keluar")
    @endpoint(NAME, "/keluar")
    def sign_out(self, request):
        session = self._session(request)
        if session is not None and not check_csrf(session, request.form.get("csrf_token")):
            return _page_error(HttpError(403, "invalid_csrf",
                                         "Formulir kedaluwarsa. Silakan coba lagi."), session)
        response = Response(status=303, headers={"Location": "/statistik"})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- exports ----------------------------------------------------------------------------
    def _staff_query(self, request):
        session = queries.require_staff(self._session(request))
        return session, queries.scoped(queries.parse(request.args), session)

    @http("GET", "/laporan/ekspor.csv")
    @endpoint(NAME, "/laporan/ekspor.csv")
    def export_csv(self, request):
        _, query = self._staff_query(request)
        EXPORTS.labels("csv").inc()
        return Response(exports.to_csv(self._stats(query, "export")), headers={
            "Content-Disposition": 'attachment; filename="statistik-dumas.csv"'},
            content_type="text/csv; charset=utf-8")

    @http("GET", "/laporan/ekspor.xlsx")
    @endpoint(NAME, "/laporan/ekspor.xlsx")
    def export_xlsx(self, request):
        _, query = self._staff_query(request)
        EXPORTS.labels("xlsx").inc()
        return Response(exports.to_xlsx(self._stats(query, "export")), headers={
            "Content-Disposition": 'attachment; filename="statistik-dumas.xlsx"'},
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @http("GET", "/laporan/bulanan.pdf")
    @endpoint(NAME, "/laporan/bulanan.pdf")
    def monthly_recap(self, request):
        session = queries.require_staff(self._session(request))
        if session.role not in queries.RECAP_ROLES:
            raise HttpError(403, "forbidden", "Laporan bulanan hanya untuk Admin Meja Dumas "
                            "dan auditor.")
        month = request.args.get("month") or date.today().strftime("%Y-%m")
        first, last = queries.month_period(month)
        stats = self._stats(handlers.StatsQuery(first, last, {}, "week"), "export")
        EXPORTS.labels("pdf").inc()
        return Response(exports.monthly_pdf(stats, first), headers={
            "Content-Disposition": f'attachment; filename="laporan-bulanan-dumas-{month}.pdf"'},
            content_type="application/pdf")

    @http("GET", "/static/<string:name>")
    def static(self, request, name):
        found = pages.static_file(name)
        if found is None:
            return Response("Tidak ditemukan", status=404)
        body, content_type = found
        return Response(body, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=3600"})

    # -- operations -------------------------------------------------------------------------
    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        return metrics_response()
