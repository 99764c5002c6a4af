"""routing: the nameko adapter. Consume received complaints, decide, record, announce; serve the
unit inbox (pages and JSON API); run the SLA clock; change rollout stages."""

import logging
import secrets

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from services.routing import (
    accounts,
    attachments,
    casework,
    exports,
    handlers,
    inbox_web,
    rollout,
    sla_clock,
)
from services.routing.db import metadata
from services.routing.domain import lifecycle
from services.routing.domain.registry import STAGES
from services.routing.metrics import (
    ACTIONS,
    AUTO_CLOSED,
    INBOX_EXPORTS,
    OPEN,
    ROUTED,
    SLA_BREACHES,
    SLA_WARNINGS,
    STAGE_CHANGES,
)
from services.routing.openapi import DOCUMENT_PATH
from services.routing.openapi import build_spec as build_openapi
from services.routing.registry_cache import RegistryCache
from services.routing.timers import config_timer
from shared import auth
from shared.db import prepared_statements, utcnow
from shared.nameko_ext import (
    Database,
    Health,
    LoginGuard,
    batch_event_consumer,
    event_consumer,
    http,
    rpc,
)
from shared.web import (
    HttpError,
    endpoint,
    health_response,
    json_response,
    metrics_response,
    read_json,
    secure_cookies,
    set_session_cookie,
)

NAME = "routing"
MAX_FORM_BYTES = 64 * 1024
MAX_PAGE = 100_000  # inbox pages beyond it are empty anyway; bigger offsets overflow the DB
RECEIVED_BATCH = 20
RECEIVED_BATCH_WAIT_MS = 2
# Double-submit token of the sign-in form (there is no session to derive one from yet).
LOGIN_COOKIE = "dumas_inbox_login"
log = logging.getLogger(__name__)


def _form(request) -> dict:
    """The posted form's fields, NUL characters dropped (PostgreSQL cannot store or compare
    them; a person never types one)."""
    request.max_content_length = MAX_FORM_BYTES
    request.max_form_memory_size = MAX_FORM_BYTES
    return {name: value.replace("\x00", "") for name, value in request.form.items()}


class PreparedStatements(DependencyProvider):
    """Whether this process may PREPARE its batch statement on PostgreSQL
    (`shared.db.prepared_statements`: DUMAS_PG_PREPARED_STATEMENTS=0 behind a transaction-mode
    pooler). Read once when the container is set up, not per batch: a process keeps the
    setting it started with."""

    def setup(self):
        self.enabled = prepared_statements()

    def get_dependency(self, worker_ctx):
        return self.enabled


class RoutingService:
    name = NAME

    db = Database(metadata)
    registry = RegistryCache()
    broker = Health()
    evidence = attachments.AttachmentStore()
    login_guard = LoginGuard(NAME)
    config = Config()
    prepared = PreparedStatements()

    # -- events ------------------------------------------------------------------------------
    # Batched: the received complaints waiting in the queue (up to RECEIVED_BATCH, gathered for
    # at most RECEIVED_BATCH_WAIT_MS) are routed in one transaction, one commit; a batch that
    # fails is handled again one event at a time with the usual retries and parking.
    @batch_event_consumer("intake", "complaint_received", max_batch=RECEIVED_BATCH,
                          max_wait_ms=RECEIVED_BATCH_WAIT_MS)
    def on_complaint_received(self, events):
        decisions = handlers.route_complaints(self.db.unit_of_work, self.registry.current(),
                                              events, prepared=self.prepared)
        for decision in decisions:
            if decision is not None:
                ROUTED.labels(decision.unit_code, decision.rule).inc()

    @event_consumer("intake", "complaint_attachment_added")
    def on_attachment_added(self, event):
        attachments.on_added(self.db.unit_of_work, event)

    @event_consumer("intake", "complaint_info_added")
    def on_info_added(self, event):
        casework.info_added(self.db.unit_of_work, handlers.CONSUMER, event)

    @event_consumer("intake", "complaint_rated")
    def on_rated(self, event):
        casework.rated(self.db.unit_of_work, handlers.CONSUMER, event)

    @event_consumer("intake", "complaint_reopened")
    def on_reopened(self, event):
        casework.reopened(self.db.unit_of_work, handlers.CONSUMER, event)

    # -- the SLA clock -----------------------------------------------------------------------
    @config_timer("SLA_TICK_SECONDS", 30)
    def sla_tick(self):
        fired = sla_clock.tick(self.db.unit_of_work)
        for name, count in fired.items():
            if not count:
                continue
            if name == "auto_closed":
                AUTO_CLOSED.inc(count)
            elif name.endswith("_breach"):
                SLA_BREACHES.labels(name.split("_")[0]).inc(count)
            else:
                SLA_WARNINGS.labels(name.split("_")[0]).inc(count)
        if any(fired.values()):
            log.info("SLA clock: %s", {k: v for k, v in fired.items() if v})

    # -- RPC ---------------------------------------------------------------------------------
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
        return self._authenticate(username, password)

    def _authenticate(self, username, password):
        with self.db.session() as session:
            result = accounts.authenticate(session, username, password)
            session.commit()
        return result

    # -- inbox pages -------------------------------------------------------------------------
    def _page_user(self, request):
        """(session, None) for a person with inbox access, or (None, response) to send."""
        session = inbox_web.current_session(request)
        if session is None:
            return None, inbox_web.login_redirect(request)
        if session.role not in lifecycle.INBOX_ROLES:
            return None, inbox_web.page_error(
                self.registry.current(), session, 403, "Akses ditolak",
                "Peran Anda tidak memiliki akses ke kotak masuk unit.")
        return session, None

    @http("GET", "/inbox/static/<string:name>")
    @endpoint(NAME, "/inbox/static")
    def inbox_static(self, request, name):
        return inbox_web.static_file(name)

    @http("GET", "/inbox/masuk")
    @endpoint(NAME, "/inbox/masuk")
    def sign_in_page(self, request):
        return self._sign_in_page(request)

    def _sign_in_page(self, request, status=200, **context):
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not (20 <= len(token) <= 64 and token.isascii()):
            token = secrets.token_urlsafe(24)
        response = inbox_web.render("login.html", self.registry.current(), status=status,
                                    login_token=token, **context)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True,
                            samesite="Strict", secure=secure_cookies(), path="/inbox/masuk")
        return response

    @http("POST", "/inbox/masuk")
    @endpoint(NAME, "/inbox/masuk")
    def sign_in(self, request):
        form = _form(request)
        username = form.get("username", "").strip()[:64]
        cookie = request.cookies.get(LOGIN_COOKIE)
        if not cookie or not secrets.compare_digest(cookie.encode(),
                                                    form.get("csrf_token", "").encode()):
            return self._sign_in_page(request, 403, username=username,
                                      error="Formulir kedaluwarsa. Silakan coba lagi.")
        refusal = self.login_guard.check(request)
        if refusal is None:
            result = self._authenticate(username, form.get("password", "")[:256])
            refusal = self.login_guard.record(request, result)
        if refusal is not None:
            response = self._sign_in_page(request, 429, error=refusal.message,
                                          username=username)
            response.headers.update(refusal.headers)
            return response
        if not result["ok"]:
            return self._sign_in_page(request, 401, username=username,
                                      error="Nama pengguna atau kata sandi salah.")
        return inbox_web.sign_in_response(result, request.args.get("next"))

    @http("POST", "/inbox/keluar")
    @endpoint(NAME, "/inbox/keluar")
    def sign_out(self, request):
        session = inbox_web.current_session(request)
        if session is not None and not auth.check_csrf(session, _form(request).get("csrf_token")):
            return inbox_web.page_error(self.registry.current(), session, 403, "Akses ditolak",
                                        "Formulir kedaluwarsa. Muat ulang halaman lalu coba lagi.")
        return inbox_web.sign_out_response()

    @http("GET", "/inbox")
    @endpoint(NAME, "/inbox")
    def inbox_page(self, request):
        user, response = self._page_user(request)
        if response:
            return response
        status = _status_arg(request)
        page = min(max(_int(request.args.get("halaman"), 1), 1), MAX_PAGE)
        with self.db.session() as session:
            listing = casework.inbox(session, inbox_web.actor_of(user), status=status, page=page)
        return inbox_web.render("inbox.html", self.registry.current(), user, page=listing,
                                status_filter=status or "", flash=_flash(request))

    @http("GET", "/inbox/ekspor.csv")
    @endpoint(NAME, "/inbox/ekspor.csv")
    def inbox_export_page(self, request):
        user, response = self._page_user(request)
        if response:
            return response
        status = _status_arg(request)
        return self._export(user, status)

    def _export(self, user, status, unit=None):
        """The list this person sees (same filter as the inbox, every page) as a CSV file."""
        with self.db.session() as session:
            rows = casework.export(session, inbox_web.actor_of(user), status=status, unit=unit)
        registry = self.registry.current()
        body = exports.to_csv(rows, user.role,
                              lambda code: registry[code].name if code in registry else code)
        INBOX_EXPORTS.labels(user.role).inc()
        name = exports.filename(user.unit_code, utcnow())
        return Response(body, content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @http("GET", "/inbox/pengaduan/<string:complaint_id>")
    @endpoint(NAME, "/inbox/pengaduan")
    def complaint_page(self, request, complaint_id, error=None, status=200):
        user, response = self._page_user(request)
        if response:
            return response
        registry = self.registry.current()
        actor = inbox_web.actor_of(user)
        try:
            with self.db.session() as session:
                row, timeline = casework.detail(session, actor, complaint_id)
                files = attachments.for_page(session, self.evidence, user,
                                             row["complaint_id"])
        except casework.NotFound:
            return inbox_web.not_found_page(registry, user)
        actions = lifecycle.available_actions(user.role, user.unit_code, row["unit_code"],
                                              row["status"])
        targets = [u for u in sorted(registry.units(), key=lambda u: (u.type != "desk", u.name))
                   if (u.accepting or u.type == "desk") and u.code != row["unit_code"]]
        return inbox_web.render(
            "detail.html", registry, user, status=status, c=row, timeline=timeline, files=files,
            actions=actions, targets=targets, error=error, flash=_flash(request),
            read_only=not lifecycle.can_act(user.role, user.unit_code, row["unit_code"]),
        )

    @http("GET", "/inbox/lampiran/<string:complaint_id>/<string:sha256>")
    @endpoint(NAME, "/inbox/lampiran")
    def attachment_file(self, request, complaint_id, sha256):
        """An evidence file (or its thumbnail): authorised per request, 404 for anyone else."""
        with self.db.session() as session:
            return attachments.serve(session, self.evidence, inbox_web.current_session(request),
                                     complaint_id, sha256, request.args.get("k"),
                                     small=request.args.get("ukuran") == "kecil")

    @http("POST", "/inbox/pengaduan/<string:complaint_id>/tindakan")
    @endpoint(NAME, "/inbox/pengaduan/tindakan")
    def complaint_action_form(self, request, complaint_id):
        user, response = self._page_user(request)
        if response:
            return response
        form = _form(request)
        if not auth.check_csrf(user, form.get("csrf_token")):
            return inbox_web.page_error(self.registry.current(), user, 403, "Akses ditolak",
                                        "Formulir kedaluwarsa. Muat ulang halaman lalu coba lagi.")
        action = form.get("action", "")
        try:
            self._act(user, complaint_id, action, form.get("text"), form.get("target_unit"))
        except casework.NotFound:
            return inbox_web.not_found_page(self.registry.current(), user)
        except (lifecycle.LifecycleError, casework.Invalid, casework.Conflict) as exc:
            error = inbox_web.to_http_error(exc)
            return self.complaint_page(request, complaint_id, error=error.message,
                                       status=error.status)
        if action == "return":  # no longer this unit's: back to its list
            return inbox_web.redirect("/inbox?ok=return")
        return inbox_web.redirect(f"/inbox/pengaduan/{complaint_id}?ok={action}")

    def _act(self, user, complaint_id, action, text, target_unit):
        row = casework.act(self.db.unit_of_work, self.registry.current(),
                           inbox_web.actor_of(user), complaint_id, action, text, target_unit)
        ACTIONS.labels(action, user.role).inc()
        return row

    @http("GET", "/inbox/audit")
    @endpoint(NAME, "/inbox/audit")
    def audit_page(self, request):
        user, response = self._page_user(request)
        if response:
            return response
        if user.role not in ("desk_admin", "auditor"):
            return inbox_web.page_error(self.registry.current(), user, 403, "Akses ditolak",
                                        "Jejak audit hanya untuk Admin Meja Dumas dan Auditor.")
        with self.db.session() as session:
            entries = casework.audit_trail(session, before_id=_int(request.args.get("before")))
        next_before = entries[-1]["id"] if len(entries) == 200 else None
        return inbox_web.render("audit.html", self.registry.current(), user, entries=entries,
                                next_before=next_before)

    @http("GET", "/inbox/unit")
    @endpoint(NAME, "/inbox/unit")
    def units_page(self, request):
        user, response = self._page_user(request)
        if response:
            return response
        if user.role not in ("desk_admin", "auditor"):
            return inbox_web.page_error(self.registry.current(), user, 403, "Akses ditolak",
                                        "Halaman ini hanya untuk Admin Meja Dumas dan Auditor.")
        registry = self.registry.current()
        units = sorted(registry.units(), key=lambda u: (u.type != "desk", u.type, u.name))
        return inbox_web.render("units.html", registry, user, units=units, stages=STAGES,
                                can_change=user.role == "desk_admin", flash=_flash(request))

    @http("POST", "/inbox/unit/<string:unit_code>/tahap")
    @endpoint(NAME, "/inbox/unit/tahap")
    def units_stage_form(self, request, unit_code):
        user, response = self._page_user(request)
        if response:
            return response
        form = _form(request)
        registry = self.registry.current()
        if user.role != "desk_admin" or not auth.check_csrf(user, form.get("csrf_token")):
            return inbox_web.page_error(registry, user, 403, "Akses ditolak",
                                        "Hanya Admin Meja Dumas yang dapat mengubah tahap unit.")
        try:
            self._change_stage(user, unit_code, form.get("stage", ""), form.get("reason", ""))
        except rollout.StageError as exc:
            error = inbox_web.to_http_error(exc)
            return inbox_web.page_error(registry, user, error.status, "Tahap tidak diubah",
                                        error.message)
        return inbox_web.redirect("/inbox/unit?ok=stage")

    def _change_stage(self, user, unit_code, stage, reason):
        result = rollout.change_stage(self.db.unit_of_work, unit_code, stage, user.username,
                                      user.role, reason)
        if result["changed"]:
            STAGE_CHANGES.labels(stage).inc()
        return result

    # -- inbox JSON API ----------------------------------------------------------------------
    @http("POST", "/api/v1/session")
    @endpoint(NAME, "/api/v1/session")
    def api_sign_in(self, request):
        body = _no_nul(read_json(request, typed=True))  # no CSRF token yet: JSON only
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_body", "Data harus berupa objek JSON.")
        refusal = self.login_guard.check(request)
        if refusal is None:
            result = self._authenticate(str(body.get("username", ""))[:64],
                                        str(body.get("password", ""))[:256])
            refusal = self.login_guard.record(request, result)
        if refusal is not None:
            raise HttpError(429, "too_many_attempts", refusal.message, headers=refusal.headers)
        if not result["ok"]:
            raise HttpError(401, "invalid_credentials", "Nama pengguna atau kata sandi salah.")
        session, token = auth.issue_session(result["username"], result["role"],
                                            result["unit_code"], result["display_name"])
        response = json_response({"username": session.username, "role": session.role,
                                  "unit_code": session.unit_code,
                                  "csrf_token": auth.csrf_token(session)})
        return set_session_cookie(response, auth.SESSION_COOKIE, token, auth.SESSION_LIFETIME)

    @http("GET", "/api/v1/inbox")
    @endpoint(NAME, "/api/v1/inbox")
    def api_inbox(self, request):
        user = inbox_web.require_api_session(request)
        _no_nul(request.args.to_dict())
        actor = inbox_web.actor_of(user)
        status = request.args.get("status") or None
        if status is not None and status not in (*lifecycle.ACTIVE, "closed"):
            raise HttpError(400, "invalid_status", "Status tidak dikenal.")
        with self.db.session() as session:
            listing = casework.inbox(session, actor, status=status,
                                     unit=request.args.get("unit") or None,
                                     page=min(max(_int(request.args.get("page"), 1), 1),
                                              MAX_PAGE))
        registry = self.registry.current()
        return json_response({
            "total": listing["total"], "page": listing["page"],
            "page_size": listing["page_size"],
            "items": [inbox_web.complaint_json(r, registry, actor) for r in listing["items"]],
        })

    @http("GET", "/api/v1/inbox/export.csv")
    @endpoint(NAME, "/api/v1/inbox/export.csv")
    def api_inbox_export(self, request):
        user = inbox_web.require_api_session(request)
        _no_nul(request.args.to_dict())
        status = request.args.get("status") or None
        if status is not None and status not in (*lifecycle.ACTIVE, "closed"):
            raise HttpError(400, "invalid_status", "Status tidak dikenal.")
        return self._export(user, status, unit=request.args.get("unit") or None)

    @http("GET", "/api/v1/inbox/complaints/<string:complaint_id>")
    @endpoint(NAME, "/api/v1/inbox/complaints")
    def api_complaint(self, request, complaint_id):
        user = inbox_web.require_api_session(request)
        actor = inbox_web.actor_of(user)
        try:
            with self.db.session() as session:
                row, timeline = casework.detail(session, actor, complaint_id)
                files = attachments.for_page(session, self.evidence, user,
                                             row["complaint_id"])
        except casework.NotFound as exc:
            raise inbox_web.to_http_error(exc) from None
        return json_response(inbox_web.complaint_json(row, self.registry.current(), actor,
                                                      timeline, files))

    @http("POST", "/api/v1/inbox/complaints/<string:complaint_id>/actions")
    @endpoint(NAME, "/api/v1/inbox/complaints/actions")
    def api_action(self, request, complaint_id):
        user = inbox_web.require_api_session(request, write=True)
        body = _no_nul(read_json(request))
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise HttpError(400, "invalid_body", "Sertakan \"action\" (teks) dalam objek JSON.")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise HttpError(400, "invalid_body", "\"text\" harus berupa teks.")
        try:
            row = self._act(user, complaint_id, body["action"], text,
                            str(body.get("target_unit") or "") or None)
        except (casework.NotFound, lifecycle.LifecycleError, casework.Invalid,
                casework.Conflict) as exc:
            raise inbox_web.to_http_error(exc) from None
        return json_response({"complaint_id": row["complaint_id"], "status": row["status"],
                              "unit_code": row["unit_code"], "seq": row["seq"]})

    @http("GET", "/api/v1/audit")
    @endpoint(NAME, "/api/v1/audit")
    def api_audit(self, request):
        user = inbox_web.require_api_session(request)
        if user.role not in ("desk_admin", "auditor"):
            raise HttpError(403, "forbidden", "Jejak audit hanya untuk Admin Meja Dumas dan "
                            "Auditor.")
        with self.db.session() as session:
            entries = casework.audit_trail(session, limit=min(max(_int(request.args.get("limit"),
                                                                       200), 1), 1000),
                                           before_id=_int(request.args.get("before")))
        return json_response({"entries": entries})

    @http("POST", "/api/v1/units/<string:unit_code>/stage")
    @endpoint(NAME, "/api/v1/units/stage")
    def api_change_stage(self, request, unit_code):
        user = inbox_web.require_api_session(request, write=True)
        if user.role != "desk_admin":
            raise HttpError(403, "forbidden", "Hanya Admin Meja Dumas yang dapat mengubah tahap.")
        body = _no_nul(read_json(request))
        if not isinstance(body, dict) or not isinstance(body.get("stage"), str):
            raise HttpError(400, "invalid_body", "Sertakan \"stage\" dalam objek JSON.")
        try:
            result = self._change_stage(user, unit_code, body["stage"],
                                        str(body.get("reason") or ""))
        except rollout.StageError as exc:
            raise inbox_web.to_http_error(exc) from None
        return json_response(result)

    @http("GET", "/api/openapi/routing.json")
    @endpoint(NAME, DOCUMENT_PATH)
    def openapi(self, request):
        return json_response(build_openapi(self.config.get("PUBLIC_BASE_URL", "/").rstrip("/")
                                           or "/"))

    # -- registry, health, metrics -----------------------------------------------------------
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
        try:
            with self.db.session() as session:
                counts = casework.open_counts(session)
            OPEN.clear()
            for unit, status, count in counts:
                OPEN.labels(unit, status).set(count)
        except Exception as exc:  # metrics must answer even when the database does not
            log.warning("could not count open complaints: %s", exc)
        return metrics_response()


def _status_arg(request) -> str | None:
    """The inbox's `?status=` filter: a known status, or None (everything) for anything else."""
    status = request.args.get("status") or None
    return status if status in (*lifecycle.ACTIVE, "closed") else None


def _no_nul(data):
    """The API's input, refused (400) if any text in it holds a NUL character, which
    PostgreSQL cannot store or compare (it would otherwise end as a 500)."""
    def has_nul(value) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(has_nul(k) or has_nul(v) for k, v in value.items())
        return isinstance(value, list) and any(has_nul(v) for v in value)

    if has_nul(data):
        raise HttpError(400, "invalid_characters", "Data mengandung karakter yang tidak sah.")
    return data


def _int(value, default=None):
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _flash(request) -> str | None:
    return {
        "acknowledge": "Pengaduan diterima.", "start": "Pengaduan sedang ditangani.",
        "request_info": "Permintaan informasi dikirim ke pelapor.",
        "respond": "Jawaban dikirim ke pelapor.", "resolve": "Pengaduan ditandai selesai.",
        "note": "Catatan disimpan.", "return": "Pengaduan dikembalikan ke Meja Dumas.",
        "reroute": "Pengaduan dialihkan.", "close": "Pengaduan ditutup.",
        "reject": "Pengaduan ditolak.", "duplicate": "Pengaduan ditandai duplikat.",
        "stage": "Tahap unit disimpan.",
    }.get(request.args.get("ok", ""))
