"""intake: the nameko adapter. Parse the request, call handlers (domain + unit of work), answer.

Channels: the web form (`/`), QR posters (`/?t=<signed token>`), the PTSP desk (`/ptsp`), the
WhatsApp Cloud API webhook, the partner JSON API, AMQP `complaint_submitted` and Open311.
See docs/channels.md.
"""

import hashlib
import json
import logging
import time
from datetime import UTC, datetime

import eventlet
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from nameko.timer import Timer
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.wrappers import Response

from services.intake import attachments, handlers, pages, retention
from services.intake.channels import TEMPLATES, Channels
from services.intake.db import metadata
from services.intake.domain import open311, qrtoken, whatsapp
from services.intake.domain.attachments import ACCEPT, AttachmentRefused
from services.intake.domain.phone import InvalidPhoneNumber, normalize_phone
from services.intake.domain.tracking import normalize_tracking_code
from services.intake.domain.validation import (
    ANONYMOUS_NOTICE,
    SubmissionInvalid,
    validate_submission,
)
from services.intake.metrics import (
    DUPLICATES,
    IDEMPOTENT_REPLAYS,
    RATE_LIMITED,
    RECEIVED,
    WHATSAPP_ITEMS,
    WHATSAPP_REJECTED,
)
from services.intake.openapi import build_spec
from shared.auth import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    check_csrf,
    csrf_token,
    issue_session,
    read_session,
)
from shared.catalogue import CATEGORY_BY_CODE, CHANNELS
from shared.nameko_ext import (
    Database,
    Health,
    LoginGuard,
    PermanentError,
    batch_event_consumer,
    event_consumer,
    http,
    rpc,
)
from shared.storage import BlobNotFound, download_headers, link_valid, sign_link
from shared.throttle import wait_text
from shared.web import (
    HttpError,
    endpoint,
    error_response,
    health_response,
    json_response,
    metrics_response,
    read_json,
    set_session_cookie,
)

log = logging.getLogger(__name__)

NAME = "intake"
DESK_ROLES = ("ptsp_officer", "desk_admin")
RPC_TIMEOUT = 5
ROUTED_BATCH = 20
# complaint_routed only updates the tracking view (off the path to the unit): wait long enough
# for batches to form at moderate load too (docs/performance.md, session 4).
ROUTED_BATCH_WAIT_MS = 100
WHATSAPP_MAX_BODY = 3 * 1024 * 1024  # Meta: "webhooks payloads can be up to 3MB"
OPEN311_FIELDS = frozenset({
    "service_code", "description", "first_name", "last_name", "phone", "email",
    "attribute[kecamatan_code]", "attribute[desa_code]", "attribute[confidentiality]",
    # standard Open311 fields we accept and ignore (no coordinates or media are kept)
    "api_key", "jurisdiction_id", "lat", "long", "address_string", "address_id",
    "device_id", "account_id", "media_url",
})


class ConfigTimer(Timer):
    """A timer whose interval comes from the service config (tests tick fast)."""

    def __init__(self, setting: str, default: float, **kwargs):
        self.setting = setting
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(self.container.config.get(self.setting) or self.interval)
        super().setup()


config_timer = ConfigTimer.decorator


class InvalidSubmissionMessage(PermanentError):
    reason = "invalid_submission"


class IntakeService:
    name = NAME

    db = Database(metadata)
    broker = Health()
    config = Config()
    channels = Channels()
    routing = RpcProxy("routing", delivery_mode=1, use_confirms=False)  # docs/events.md, "RPC"
    login_guard = LoginGuard(NAME)

    # -- JSON API -------------------------------------------------------------------------

    @http("POST", "/api/v1/complaints")
    @endpoint(NAME, "/api/v1/complaints")
    def submit(self, request):
        tools = self.channels
        key = request.headers.get("X-API-Key")
        client = tools.api_keys.lookup(key) if key else None
        if key and client is None:
            raise HttpError(401, "invalid_api_key", "Kunci API tidak dikenal.")
        if client:
            self._limit(f"key:{client.key_id}", client.limit, "api_key")
        else:
            self._limit(f"ip:{tools.client_ip(request)}", tools.ip_limit, "ip")
        payload = read_json(request)
        idem_key = request.headers.get("Idempotency-Key")
        if idem_key is not None:
            # Only a request with a key is remembered (and hashed, to spot a reused key).
            req_hash = handlers.request_hash(payload)
            scope = f"api:{client.key_id}" if client else f"ip:{tools.client_ip(request)}"
            idem_key = idem_key.strip()
            if not 1 <= len(idem_key) <= 200:
                raise HttpError(400, "invalid_idempotency_key",
                                "Idempotency-Key harus 1 sampai 200 karakter.")
            replay = self._replay(scope, idem_key, req_hash, client.channel if client else "web")
            if replay is not None:
                return replay
        channel = client.channel if client else "web"
        # The credentials decide the channel; a non-text channel is left for validation.
        if isinstance(payload, dict) and isinstance(payload.get("channel", ""), str):
            payload = {**payload, "channel": channel}
        trusted = False
        if client and client.unit_code and isinstance(payload, dict):
            payload = {**payload, "unit_code": client.unit_code}
            trusted = True
        try:
            clean = validate_submission(payload)
        except SubmissionInvalid as exc:
            RECEIVED.labels(channel, "invalid").inc()
            raise HttpError(400, exc.code, exc.message, details=exc.errors) from None
        base = self._base_url()

        def render(accepted):
            return self._accepted_body(accepted, clean, base)

        record = (handlers.IdempotencyRecord(scope, idem_key, req_hash, render)
                  if idem_key is not None else None)
        try:
            accepted = self._store(clean, unit_hint_trusted=trusted, idempotent=record)
        except handlers.IdempotencyRace:
            replay = self._replay(scope, idem_key, req_hash, channel)
            if replay is None:  # pragma: no cover - the winner committed, so it is there
                raise
            return replay
        status, body = render(accepted)
        headers = {"Location": f"/api/v1/complaints/{accepted.tracking_code}"}
        return json_response(body, status, headers)

    def _accepted_body(self, accepted, clean, base):
        code = accepted.tracking_code
        body = {
            "tracking_code": code,
            "status": accepted.status,
            "received_at": accepted.received_at.isoformat(),
            "tracking_url": f"{base}/lacak/{code}",
            "duplicate": accepted.duplicate,
            "message": (
                "Pengaduan Anda sudah kami terima. Simpan kode pelacakan "
                f"{code} untuk memantau perkembangannya."
            ),
        }
        if accepted.duplicate:
            body["message"] = (
                "Pengaduan yang hampir sama dari kontak yang sama sudah kami terima dalam 7 hari "
                f"terakhir dengan kode pelacakan {code}; pengaduan ini digabungkan ke sana."
            )
        if clean.get("personal_data_dropped"):
            body["notice"] = ANONYMOUS_NOTICE
        return (200 if accepted.duplicate else 201), body

    def _replay(self, scope, key, req_hash, channel):
        with self.db.session() as session:
            stored = handlers.stored_answer(session, scope, key)
        if stored is None:
            return None
        if stored.request_hash != req_hash:
            raise HttpError(409, "idempotency_conflict",
                            "Idempotency-Key ini sudah dipakai untuk data yang berbeda.")
        IDEMPOTENT_REPLAYS.labels(channel).inc()
        return json_response(stored.body, stored.status_code, {"Idempotent-Replayed": "true"})

    def _store(self, clean, **kw):
        accepted = handlers.submit_complaint(self.db.unit_of_work, clean,
                                             box=self.channels.box,
                                             prepared=self.channels.prepared, **kw)
        if accepted.duplicate:
            DUPLICATES.labels(clean["channel"]).inc()
            RECEIVED.labels(clean["channel"], "duplicate").inc()
        else:
            RECEIVED.labels(clean["channel"], "accepted").inc()
        return accepted

    def _limit(self, bucket, limit, source):
        decision = self.channels.limiter.take(bucket, limit, time.monotonic())
        if not decision.allowed:
            RATE_LIMITED.labels(source).inc()
            raise HttpError(
                429, "rate_limited",
                f"Terlalu banyak permintaan. Silakan coba lagi dalam {decision.retry_after} "
                "detik.", headers={"Retry-After": str(decision.retry_after)},
            )

    def _base_url(self):
        return self.config["PUBLIC_BASE_URL"].rstrip("/")

    @http("GET", "/api/v1/complaints/<string:code>")
    @endpoint(NAME, "/api/v1/complaints/<code>")
    def track(self, request, code):
        self._guard_lookup(request)
        with self.db.session() as session:
            view = handlers.find_public(session, code)
        if view is None:
            self._lookup_missed(request)
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
                    for c in CATEGORY_BY_CODE.values()
                ]
            }
        )

    @http("GET", "/api/openapi.json")
    @endpoint(NAME, "/api/openapi.json")
    def openapi(self, request):
        return json_response(build_spec(self._base_url()))

    @http("GET", "/api/docs")
    @endpoint(NAME, "/api/docs")
    def api_docs(self, request):
        return pages.render(self.channels.templates, "api_docs.html",
                            spec=build_spec(self._base_url()))

    # -- web form, QR posters, tracking pages ---------------------------------------------

    @http("GET", "/")
    @endpoint(NAME, "/")
    def form_page(self, request):
        target = qrtoken.verify(self.channels.qr_secret, request.args.get("t"))
        return self._form(request, {}, {}, target)

    def _form(self, request, values, errors, target, status=200, template="form.html",
              **extra):
        token, new = pages.form_token(request)
        note = None
        if target is not None:
            note = (f"Formulir ini dari poster QR untuk unit {target.unit_code}. Pengaduan "
                    "Anda langsung diteruskan ke unit tersebut.")
        return pages.render(
            self.channels.templates, template, status, set_form_cookie=token if new else None,
            values=values, errors=errors, csrf=extra.pop("csrf", token),
            token=request.values.get("t") if target else None, unit_note=note,
            accept=ACCEPT, **pages.form_context(), **extra,
        )

    @http("POST", "/")
    @endpoint(NAME, "POST /")
    def form_submit(self, request):
        tools = self.channels
        try:
            form, files = attachments.read_multipart(request)
        except AttachmentRefused as exc:
            return self._refused_upload(request, getattr(exc, "form", {}), exc)
        target = qrtoken.verify(tools.qr_secret, form.get("t"))
        if not pages.form_token_ok(request, form):
            return self._form(request, form, {"_": ["Formulir kedaluwarsa. Kirim ulang."]},
                              target, 403)
        self._limit_page(f"ip:{tools.client_ip(request)}", tools.ip_limit)
        payload = pages.submission_from_form(form, "qr" if target else "web")
        if target:
            payload["unit_code"] = target.unit_code
        try:
            clean = validate_submission(payload)
        except SubmissionInvalid as exc:
            RECEIVED.labels(payload["channel"], "invalid").inc()
            return self._form(request, form, pages.errors_by_field(exc.errors), target, 400)
        try:
            refs = attachments.store_files(tools.blobs, files, payload["channel"])
        except AttachmentRefused as exc:
            return self._refused_upload(request, form, exc, target)
        accepted = self._store(clean, unit_hint_trusted=target is not None,
                               qr_location=target.location if target else None,
                               attachments=refs)
        suffix = "?duplikat=1" if accepted.duplicate else ""
        return Response(status=303, headers={
            "Location": f"/terkirim/{accepted.tracking_code}{suffix}"})

    def _refused_upload(self, request, form, exc, target=None, desk_session=None):
        """The form again, with the attachment refusal (413, 415 or 400) and its code."""
        RECEIVED.labels("ptsp" if desk_session else ("qr" if target else "web"),
                        "invalid").inc()
        errors = {"lampiran": [exc.message]}
        extra = {"upload_error_code": exc.code}
        if desk_session is not None:
            return self._desk_page(request, desk_session, form, errors, exc.status, **extra)
        return self._form(request, form, errors, target, exc.status, **extra)

    def _limit_page(self, bucket, limit):
        try:
            self._limit(bucket, limit, "ip")
        except HttpError as exc:
            raise PageError(exc) from None

    @http("GET", "/terkirim/<string:code>")
    @endpoint(NAME, "/terkirim/<code>")
    def sent_page(self, request, code):
        refused = self._guard_lookup_page(request, code)
        if refused is not None:
            return refused
        with self.db.session() as session:
            view = handlers.find_public(session, code)
        if view is None:
            self._lookup_missed(request)
            return self._lookup(request, code, "Kode pelacakan tidak ditemukan.", 404)
        with self.db.session() as session:
            files = [attachments.view(a) for a in handlers.attachments_of(
                session, handlers._by_code(session, code).id)]
        return pages.render(self.channels.templates, "sent.html", view=view, files=files,
                            duplicate=request.args.get("duplikat") == "1",
                            sla_days=pages.SLA_DAYS, due_text=pages.wib(view["expected_at"]))

    @http("GET", "/lacak")
    @endpoint(NAME, "/lacak")
    def lookup_page(self, request):
        kode = request.args.get("kode")
        if kode is None:
            return self._lookup(request, None, None)
        refused = self._guard_lookup_page(request, kode)
        if refused is not None:
            return refused
        with self.db.session() as session:
            view = handlers.find_public(session, kode)
        if view is None:
            self._lookup_missed(request)
            return self._lookup(
                request, kode, "Kode pelacakan tidak ditemukan. Periksa kembali kode Anda "
                "(contoh: DMS-7KQ4-MX9T-2BH3).", 404)
        return Response(status=303, headers={"Location": f"/lacak/{view['tracking_code']}"})

    def _lookup(self, request, kode, error, status=200, headers=None):
        return pages.render(self.channels.templates, "lookup.html", status, kode=kode,
                            error=error, headers=headers)

    # Tracking codes are looked up by anyone: a generous rate per address, and few unknown
    # codes per address (guessing codes finds nothing but misses). docs/security.md.
    def _guard_lookup(self, request):
        tools = self.channels
        ip = tools.client_ip(request)
        self._limit(f"lookup:{ip}", tools.lookup_limit, "lookup")
        wait = tools.lookup_misses.wait(ip)
        if wait:
            RATE_LIMITED.labels("lookup_miss").inc()
            raise HttpError(
                429, "rate_limited", "Terlalu banyak kode pelacakan yang tidak ditemukan. "
                f"Silakan coba lagi dalam {wait_text(wait)}.",
                headers={"Retry-After": str(wait)})

    def _guard_lookup_page(self, request, kode):
        try:
            self._guard_lookup(request)
        except HttpError as exc:
            return self._lookup(request, kode, exc.message, 429, exc.headers)
        return None

    def _lookup_missed(self, request):
        self.channels.lookup_misses.fail(self.channels.client_ip(request))

    @http("GET", "/lacak/<string:code>")
    @endpoint(NAME, "/lacak/<code>")
    def tracking_page(self, request, code):
        refused = self._guard_lookup_page(request, code)
        if refused is not None:
            return refused
        return self._tracking(request, code, missed=True)

    def _tracking(self, request, code, error=None, status=200, missed=False):
        with self.db.session() as session:
            view = handlers.tracking_page(session, code)
        if view is None:
            if missed:
                self._lookup_missed(request)
            return self._lookup(request, code, "Kode pelacakan tidak ditemukan. Periksa "
                                "kembali kode Anda.", 404)
        token, new = pages.form_token(request)
        flash = {"jawab": "Terima kasih, keterangan Anda sudah diteruskan ke unit.",
                 "nilai": "Terima kasih atas penilaian Anda.",
                 "buka": "Permintaan membuka kembali pengaduan sudah diteruskan."}.get(
            request.args.get("ok"))
        files = [
            {**attachments.view(a),
             "url": (f"/lacak/{view['tracking_code']}/lampiran/{a['sha256']}?k="
                     + sign_link(self.channels.link_secret, view["complaint_id"], a["sha256"],
                                 token))}
            for a in view["attachments"]
        ]
        return pages.render(
            self.channels.templates, "track.html", status, files=files,
            set_form_cookie=token if new else None, view=pages.dated(view), csrf=token,
            labels=pages.MESSAGE_LABELS, due_text=pages.wib(view["due_at"]), flash=flash,
            error=error,
        )

    @http("POST", "/lacak/<string:code>/<string:action>")
    @endpoint(NAME, "/lacak/<code>/<action>")
    def tracking_action(self, request, code, action):
        form = pages.read_form(request)
        if not pages.form_token_ok(request, form):
            return self._tracking(request, code, "Formulir kedaluwarsa. Silakan ulangi.", 403)
        self._limit_page(f"ip:{self.channels.client_ip(request)}", self.channels.ip_limit)
        uow = self.db.unit_of_work
        try:
            if action == "jawab":
                code = handlers.add_info(uow, code, form.get("text", ""), "web")
            elif action == "nilai":
                rating = form.get("rating", "")
                handlers.rate(uow, code, int(rating) if rating.isdigit() else 0,
                              form.get("comment", ""))
            elif action == "buka-kembali":
                handlers.reopen(uow, code, form.get("reason", ""))
                action = "buka"
            else:
                raise HttpError(404, "not_found", "Halaman tidak ditemukan.")
        except handlers.ActionRefused as exc:
            return self._tracking(request, code, exc.message, 400)
        view_code = code.upper()
        return Response(status=303, headers={"Location": f"/lacak/{view_code}?ok={action}"})

    @http("GET", "/lacak/<string:code>/lampiran/<string:sha256>")
    @endpoint(NAME, "/lacak/<code>/lampiran/<sha256>")
    def tracking_attachment(self, request, code, sha256):
        """One file of a complaint, for the complainant: the link from the tracking page is
        signed, short-lived and bound to this browser's form cookie; anything else is 404."""
        missing = HttpError(404, "not_found", "Lampiran tidak ditemukan.")
        with self.db.session() as session:
            row = handlers._by_code(session, code)
            found = row and handlers.attachment_of(session, row.id, sha256)
        if not found or not link_valid(self.channels.link_secret, request.args.get("k"), row.id,
                                       sha256, request.cookies.get(pages.FORM_COOKIE) or ""):
            raise missing
        try:
            data = self.channels.blobs.get(sha256)
        except BlobNotFound:
            raise missing from None
        return Response(data, headers=download_headers(found["media_type"], found["name"]))

    @http("GET", "/static/dumas.css")
    def stylesheet(self, request):
        css = (TEMPLATES.parent / "static" / "dumas.css").read_text("utf-8")
        return Response(css, mimetype="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})

    # -- PTSP desk ------------------------------------------------------------------------

    def _desk_session(self, request):
        session = read_session(request.cookies.get(SESSION_COOKIE))
        if session is None or session.role not in DESK_ROLES:
            return None
        return session

    @http("GET", "/ptsp/masuk")
    @endpoint(NAME, "/ptsp/masuk")
    def desk_login_page(self, request):
        return self._login(request)

    def _login(self, request, error=None, status=200, username=None, headers=None):
        token, new = pages.form_token(request)
        return pages.render(self.channels.templates, "ptsp_login.html", status,
                            set_form_cookie=token if new else None, csrf=token, error=error,
                            username=username, headers=headers)

    @http("POST", "/ptsp/masuk")
    @endpoint(NAME, "POST /ptsp/masuk")
    def desk_login(self, request):
        form = pages.read_form(request)
        username = (form.get("username") or "").strip()[:64]
        if not pages.form_token_ok(request, form):
            return self._login(request, "Formulir kedaluwarsa. Silakan ulangi.", 403, username)
        refusal = self.login_guard.check(request)
        if refusal is None:
            try:
                with eventlet.Timeout(RPC_TIMEOUT, TimeoutError):
                    result = self.routing.authenticate(username, form.get("password") or "")
            except TimeoutError:
                return self._login(request, "Layanan akun sedang tidak tersedia. Coba lagi "
                                   "sebentar lagi.", 503, username)
            refusal = self.login_guard.record(request, result)
        if refusal is not None:
            return self._login(request, refusal.message, 429, username, refusal.headers)
        if not result.get("ok"):
            return self._login(request, "Nama pengguna atau kata sandi salah.", 401, username)
        if result["role"] not in DESK_ROLES:
            return self._login(request, "Akun ini tidak memiliki akses ke Meja PTSP.", 403,
                               username)
        _session, cookie = issue_session(result["username"], result["role"],
                                         result.get("unit_code"), result["display_name"])
        response = Response(status=303, headers={"Location": "/ptsp"})
        return set_session_cookie(response, SESSION_COOKIE, cookie, SESSION_LIFETIME)

    @http("POST", "/ptsp/keluar")
    @endpoint(NAME, "/ptsp/keluar")
    def desk_logout(self, request):
        session = read_session(request.cookies.get(SESSION_COOKIE))
        if session is not None and not check_csrf(session, pages.read_form(request).get("csrf")):
            return self._login(request, "Formulir kedaluwarsa. Muat ulang halaman lalu coba "
                               "keluar lagi.", 403)
        response = Response(status=303, headers={"Location": "/ptsp/masuk"})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @http("GET", "/ptsp")
    @endpoint(NAME, "/ptsp")
    def desk_form(self, request):
        session = self._desk_session(request)
        if session is None:
            return Response(status=303, headers={"Location": "/ptsp/masuk"})
        return self._desk_page(request, session, {}, {})

    def _desk_page(self, request, session, values, errors, status=200, **extra):
        return self._form(request, values, errors, None, status, template="ptsp_form.html",
                          csrf=csrf_token(session), officer=session, **extra)

    @http("POST", "/ptsp")
    @endpoint(NAME, "POST /ptsp")
    def desk_submit(self, request):
        session = self._desk_session(request)
        if session is None:
            return Response(status=303, headers={"Location": "/ptsp/masuk"})
        try:
            form, files = attachments.read_multipart(request)
        except AttachmentRefused as exc:
            return self._refused_upload(request, getattr(exc, "form", {}), exc,
                                        desk_session=session)
        if not check_csrf(session, form.get("csrf")):
            return self._desk_page(request, session, form,
                                   {"_": ["Formulir kedaluwarsa. Silakan ulangi."]}, 403)
        try:
            clean = validate_submission(pages.submission_from_form(form, "ptsp"))
        except SubmissionInvalid as exc:
            RECEIVED.labels("ptsp", "invalid").inc()
            return self._desk_page(request, session, form, pages.errors_by_field(exc.errors),
                                   400)
        try:
            refs = attachments.store_files(self.channels.blobs, files, "ptsp")
        except AttachmentRefused as exc:
            return self._refused_upload(request, form, exc, desk_session=session)
        accepted = self._store(clean, officer=session.username, attachments=refs)
        return Response(status=303, headers={
            "Location": f"/ptsp/tanda-terima/{accepted.tracking_code}"})

    @http("GET", "/ptsp/tanda-terima/<string:code>")
    @endpoint(NAME, "/ptsp/tanda-terima/<code>")
    def desk_receipt(self, request, code):
        session = self._desk_session(request)
        if session is None:
            return Response(status=303, headers={"Location": "/ptsp/masuk"})
        with self.db.session() as db:
            view = handlers.tracking_page(db, code)
        if view is None:
            raise PageError(HttpError(404, "not_found", "Kode pelacakan tidak ditemukan."))
        files = [attachments.view(a) for a in view["attachments"]]
        return pages.render(self.channels.templates, "ptsp_receipt.html", view=view, files=files,
                            officer=session, spelled=pages.spell_code(view["tracking_code"]),
                            received_text=pages.wib(view["received_at"]),
                            base_url=self._base_url(), sla_days=pages.SLA_DAYS)

    # -- WhatsApp Business Cloud API ------------------------------------------------------

    @http("GET", "/webhooks/whatsapp")
    @endpoint(NAME, "GET /webhooks/whatsapp")
    def whatsapp_verify(self, request):
        expected = self.channels.whatsapp_verify_token
        args = request.args
        if (args.get("hub.mode") == "subscribe" and expected
                and args.get("hub.verify_token") == expected):
            return Response(args.get("hub.challenge", ""), mimetype="text/plain")
        raise HttpError(403, "verification_failed", "Token verifikasi tidak cocok.")

    @http("POST", "/webhooks/whatsapp")
    @endpoint(NAME, "POST /webhooks/whatsapp")
    def whatsapp_webhook(self, request):
        tools = self.channels
        too_large = HttpError(413, "payload_too_large", "Data yang dikirim terlalu besar.")
        if (request.content_length or 0) > WHATSAPP_MAX_BODY:
            WHATSAPP_REJECTED.labels("payload_too_large").inc()
            raise too_large
        raw = request.get_data(cache=False)
        if len(raw) > WHATSAPP_MAX_BODY:
            WHATSAPP_REJECTED.labels("payload_too_large").inc()
            raise too_large
        if not whatsapp.signature_valid(raw, request.headers.get("X-Hub-Signature-256"),
                                        tools.whatsapp_secret):
            WHATSAPP_REJECTED.labels("invalid_signature").inc()
            raise HttpError(401, "invalid_signature", "Tanda tangan webhook tidak valid.")
        # Authentic from here on. What cannot be read at all is refused (Meta never sends it);
        # what can be read but not used is acknowledged and recorded with its reason.
        if request.mimetype not in ("application/json", "") and not request.mimetype.endswith(
                "+json"):
            WHATSAPP_REJECTED.labels("unsupported_media_type").inc()
            raise HttpError(415, "unsupported_media_type",
                            "Data harus dikirim dalam format JSON.")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            WHATSAPP_REJECTED.labels("invalid_json").inc()
            raise HttpError(400, "invalid_json", "Data JSON tidak dapat dibaca.") from exc
        delivery = hashlib.sha256(raw).hexdigest()[:16]
        try:
            items = whatsapp.parse(payload, delivery)
        except whatsapp.PayloadInvalid as exc:
            if not isinstance(payload, dict):
                WHATSAPP_REJECTED.labels("invalid_payload").inc()
                raise HttpError(400, "invalid_payload",
                                "Data webhook harus berupa objek JSON.") from exc
            kind = str(payload.get("object"))[:32]
            items = [whatsapp.Ignored(f"unsupported:{delivery}", "unsupported", f"object:{kind}")]
        outcomes = []
        for item in items:
            outcome = self._whatsapp_item(item)
            WHATSAPP_ITEMS.labels(outcome).inc()
            outcomes.append(outcome)
        return json_response({"status": "ok", "outcomes": outcomes})

    def _whatsapp_item(self, item) -> str:
        uow = self.db.unit_of_work
        if isinstance(item, whatsapp.Ignored):
            if item.kind == "malformed" or item.detail.startswith(("object:", "field:")):
                log.warning("whatsapp webhook: %s part recorded, not used: %s", item.kind,
                            item.detail)
            handlers.remember_outcome(uow, "whatsapp", item.key,
                                      422 if item.kind == "malformed" else 200,
                                      {"outcome": item.kind, "detail": item.detail})
            return item.kind
        key = f"msg:{item.message_id}"
        with self.db.session() as session:
            if handlers.stored_answer(session, "whatsapp", key) is not None:
                return "duplicate_delivery"
        if isinstance(item, whatsapp.InboundMedia):
            return self._whatsapp_media(item, key)
        phone = self._whatsapp_sender(item, key)
        if phone is None:
            return "invalid"
        new, text = whatsapp.wants_new_complaint(item.text)
        open_id = None if new else self._open_complaint_of(phone)
        if open_id is not None:
            try:
                handlers.add_info(uow, "", text, "whatsapp", complaint_id=open_id,
                                  idempotent=("whatsapp", key))
            except handlers.IdempotencyRace:
                return "duplicate_delivery"
            except handlers.ActionRefused:
                pass  # closed meanwhile: becomes a new complaint below
            else:
                return "info_added"
        return self._whatsapp_complaint(item, key, phone, text[:4000])

    def _whatsapp_media(self, item, key) -> str:
        """A photo, document, voice note or video: attached to the sender's open complaint, or
        the start of a new one. The file itself is downloaded by the media timer, after this
        webhook has answered (docs/attachments.md)."""
        phone = self._whatsapp_sender(item, key)
        if phone is None:
            return "invalid"
        new, caption = whatsapp.wants_new_complaint(item.caption or "")
        item = whatsapp.InboundMedia(item.message_id, item.sender, item.name, item.kind,
                                     item.media_id, caption, item.filename)
        open_id = None if new else self._open_complaint_of(phone)
        if open_id is not None:
            try:
                if attachments.media_follow_up(self.db.unit_of_work, open_id, item,
                                               key) is not None:
                    return "media_queued"
            except handlers.IdempotencyRace:
                return "duplicate_delivery"

        def queue_download(uow_, complaint_id, now):
            attachments.enqueue_media(uow_, item.message_id, complaint_id, item.media_id,
                                      item.kind, item.filename, now)

        return self._whatsapp_complaint(item, key, phone, attachments.description_for(item),
                                        on_stored=queue_download)

    def _whatsapp_sender(self, item, key) -> str | None:
        """The sender's number in E.164, or None (recorded as invalid). Over the sender's rate
        limit: 429 for the whole delivery; Meta retries it later and the items handled so far
        are skipped by their message ids."""
        try:
            phone = normalize_phone(item.sender)
        except InvalidPhoneNumber:
            handlers.remember_outcome(self.db.unit_of_work, "whatsapp", key, 422,
                                      {"outcome": "invalid_sender"})
            return None
        self._limit(f"phone:{phone}", self.channels.phone_limit, "phone")
        return phone

    def _open_complaint_of(self, phone: str) -> str | None:
        contact_key = self.channels.box.fingerprint({"phone": phone})
        with self.db.session() as session:
            return handlers.open_complaint_of(session, contact_key)

    def _whatsapp_complaint(self, item, key, phone, description, on_stored=None) -> str:
        """A new complaint from a WhatsApp message, answered once per message id."""
        uow = self.db.unit_of_work
        try:
            clean = validate_submission({
                "channel": "whatsapp", "category": "lainnya", "description": description,
                "confidentiality": "public",
                "complainant": {"name": (item.name or "")[:120] or None, "phone": phone},
            })
        except SubmissionInvalid as exc:
            RECEIVED.labels("whatsapp", "invalid").inc()
            handlers.remember_outcome(uow, "whatsapp", key, 422,
                                      {"outcome": "invalid", "errors": exc.errors})
            return "invalid"
        record = handlers.IdempotencyRecord(
            "whatsapp", key, "-",
            lambda a: (200, {"outcome": "duplicate" if a.duplicate else "complaint",
                             "tracking_code": a.tracking_code}),
        )
        try:
            accepted = self._store(clean, idempotent=record, on_stored=on_stored)
        except handlers.IdempotencyRace:
            return "duplicate_delivery"
        return "duplicate" if accepted.duplicate else "complaint"

    @config_timer("MEDIA_POLL_SECONDS", 2)
    def download_media(self):
        """Fetch queued WhatsApp media through the Cloud API and attach it."""
        tools = self.channels
        try:
            outcomes = attachments.process_media(self.db.unit_of_work, tools.blobs,
                                                 tools.cloud_api)
        except (OperationalError, InterfaceError) as exc:
            log.warning("WhatsApp media downloads paused, database unavailable: %s", exc)
            return
        if outcomes:
            log.info("WhatsApp media: %s", outcomes)

    @config_timer("ATTACHMENT_SWEEP_SECONDS", 900)
    def sweep_attachments(self):
        """Delete stored files no complaint refers to (an upload whose complaint failed)."""
        attachments.sweep(self.db.unit_of_work, self.channels.blobs)

    @config_timer("RETENTION_SWEEP_SECONDS", 3600)
    def prune_retention(self):
        """Delete idempotency records and finished media downloads past their retention window
        (services/intake/retention.py; the same as `dumas intake prune`)."""
        try:
            retention.sweep(self.db.unit_of_work, retention.windows_from(self.config))
        except retention.RetentionConfigError as exc:
            log.error("retention sweep refused, nothing deleted: %s", exc)
        except (OperationalError, InterfaceError) as exc:
            log.warning("retention sweep skipped, database unavailable: %s", exc)

    # -- Open311 GeoReport v2 -------------------------------------------------------------

    @http("GET", "/open311/v2/services.json")
    @endpoint(NAME, "/open311/v2/services.json")
    def open311_services(self, request):
        return json_response(open311.services())

    @http("POST", "/open311/v2/requests.json")
    @endpoint(NAME, "POST /open311/v2/requests.json")
    def open311_submit(self, request):
        tools = self.channels
        try:
            self._limit(f"ip:{tools.client_ip(request)}", tools.ip_limit, "ip")
            form = pages.read_form(request)
        except HttpError as exc:
            return json_response(open311.error(exc.status, exc.message), exc.status,
                                 exc.headers)
        unknown = sorted(set(form.keys()) - OPEN311_FIELDS)
        if unknown:
            return json_response(open311.error(400, f"Isian tidak dikenal: {', '.join(unknown)}."),
                                 400)
        try:
            clean = validate_submission(open311.submission_from_form(form))
        except SubmissionInvalid as exc:
            RECEIVED.labels("open311", "invalid").inc()
            return json_response([{"code": 400, "description": f"{d['field']}: {d['message']}"}
                                  for d in exc.errors], 400)
        accepted = self._store(clean)
        notice = ("Pengaduan digabungkan dengan pengaduan sebelumnya yang sama."
                  if accepted.duplicate else "Pengaduan diterima.")
        return json_response([{"service_request_id": accepted.tracking_code,
                               "service_notice": notice, "account_id": None}],
                             200 if accepted.duplicate else 201)

    @http("GET", "/open311/v2/requests.json")
    @endpoint(NAME, "/open311/v2/requests.json")
    def open311_list(self, request):
        args = request.args
        try:
            start = _iso(args.get("start_date"))
            end = _iso(args.get("end_date"))
        except ValueError:
            return json_response(open311.error(400, "Format tanggal harus ISO 8601."), 400)
        if any("\x00" in value for value in args.values()):  # PostgreSQL refuses NUL
            return json_response(open311.error(400, "Parameter berisi karakter tidak sah."), 400)
        ids = args.get("service_request_id")
        if ids:
            try:
                self._guard_lookup(request)
            except HttpError as exc:
                return json_response(open311.error(429, exc.message), 429, exc.headers)
        with self.db.session() as session:
            rows = handlers.open311_requests(
                session,
                codes=[c for c in map(normalize_tracking_code, ids.split(",")[:100]) if c]
                if ids else None,
                service_code=args.get("service_code"), status=args.get("status"),
                start=start, end=end,
            )
        return json_response([open311.request_view(r) for r in rows])

    @http("GET", "/open311/v2/requests/<string:request_id>.json")
    @endpoint(NAME, "/open311/v2/requests/<id>.json")
    def open311_one(self, request, request_id):
        try:
            self._guard_lookup(request)
        except HttpError as exc:
            return json_response(open311.error(429, exc.message), 429, exc.headers)
        with self.db.session() as session:
            code = normalize_tracking_code(request_id)
            rows = handlers.open311_requests(session, codes=[code]) if code else []
        if not rows:
            self._lookup_missed(request)
            return json_response(open311.error(404, "Pengaduan tidak ditemukan."), 404)
        return json_response([open311.request_view(rows[0])])

    # -- AMQP intake ----------------------------------------------------------------------

    @event_consumer("channels", "complaint_submitted")
    def on_complaint_submitted(self, event):
        data = event.data
        scope, key = f"amqp:{data['channel']}", data["message_id"]
        with self.db.session() as session:
            if handlers.stored_answer(session, scope, key) is not None:
                return
        payload = {k: data.get(k) for k in (
            "channel", "category", "description", "kecamatan_code", "desa_code", "unit_code",
            "confidentiality", "complainant")}
        try:
            clean = validate_submission(payload)
        except SubmissionInvalid as exc:
            RECEIVED.labels(data["channel"], "invalid").inc()
            raise InvalidSubmissionMessage(
                "; ".join(f"{d['field']}: {d['code']}" for d in exc.errors)
            ) from None
        record = handlers.IdempotencyRecord(
            scope, key, handlers.request_hash(payload),
            lambda a: (200, {"tracking_code": a.tracking_code, "duplicate": a.duplicate}),
        )
        try:
            self._store(clean, idempotent=record)
        except handlers.IdempotencyRace:
            return

    # -- lifecycle from routing -----------------------------------------------------------

    @rpc
    def get_contact(self, complaint_id):
        """Personal contact for notification at send time; never logged, never in events."""
        with self.db.session() as session:
            return handlers.contact_for(session, complaint_id, self.channels.box)

    @rpc
    def get_contacts(self, complaint_ids):
        """`get_contact` of several complaints at once (notification's sends that are due
        together): complaint id -> contact or null, for every id asked."""
        with self.db.session() as session:
            return handlers.contacts_for(session, complaint_ids, self.channels.box)

    def _apply(self, event):
        self._apply_all([event])

    def _apply_all(self, events):
        try:
            handlers.apply_status_events(self.db.unit_of_work, events,
                                         prepared=self.channels.prepared)
        except handlers.UnknownComplaint as exc:
            raise PermanentError(f"unknown complaint {exc}") from exc

    # One complaint_routed per new complaint: under load they come in bursts, and applying the
    # waiting ones (up to ROUTED_BATCH, gathered for at most ROUTED_BATCH_WAIT_MS) in one
    # transaction saves a commit per complaint. A batch that fails (an unknown complaint) is
    # handled again one event at a time, which parks just that one.
    @batch_event_consumer("routing", "complaint_routed", max_batch=ROUTED_BATCH,
                          max_wait_ms=ROUTED_BATCH_WAIT_MS)
    def on_complaint_routed(self, events):
        self._apply_all(events)

    @event_consumer("routing", "complaint_acknowledged")
    def on_complaint_acknowledged(self, event):
        self._apply(event)

    @event_consumer("routing", "complaint_work_started")
    def on_complaint_work_started(self, event):
        self._apply(event)

    @event_consumer("routing", "complaint_info_requested")
    def on_complaint_info_requested(self, event):
        self._apply(event)

    @event_consumer("routing", "complaint_responded")
    def on_complaint_responded(self, event):
        self._apply(event)

    @event_consumer("routing", "complaint_resolved")
    def on_complaint_resolved(self, event):
        self._apply(event)

    @event_consumer("routing", "complaint_closed")
    def on_complaint_closed(self, event):
        self._apply(event)

    @http("GET", "/health")
    def health(self, request):
        return health_response({"database": self.db.ping(), "broker": self.broker.ok()})

    @http("GET", "/metrics")
    def metrics(self, request):
        self.db.refresh_metrics()
        return metrics_response()


class PageError(HttpError):
    """An HttpError raised from a page handler (answered as JSON by `endpoint`, with headers)."""

    def __init__(self, error: HttpError):
        super().__init__(error.status, error.code, error.message, error.details, error.headers)


def _iso(value):
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _channel_label(channel) -> str:
    return channel if isinstance(channel, str) and channel in CHANNELS else "unknown"


__all__ = ["IntakeService", "error_response"]
