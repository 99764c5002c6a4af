"""HTTP edge helpers: JSON answers, errors with a machine code and an Indonesian message,
request-size limits, health and metrics. Domain errors are mapped to status codes here, once."""

import json
import logging
import os
import time
from functools import wraps
from html import escape as html_escape

from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.wrappers import Request, Response

from shared import metrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


# Pages: nothing external, no inline script; frames refused.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def html_response(html: str, status: int = 200, headers: dict | None = None) -> Response:
    """A page (already rendered with autoescaping) with the security headers."""
    return Response(
        html, status=status, headers={**SECURITY_HEADERS, **(headers or {})},
        mimetype="text/html",
    )


def secure_cookies() -> bool:
    """Mark cookies Secure when served behind TLS (DUMAS_SECURE_COOKIES=1 in production)."""
    return os.environ.get("DUMAS_SECURE_COOKIES", "0") == "1"


def behind_tls(request: Request) -> bool:
    """The proxy says the browser spoke HTTPS (`X-Forwarded-Proto: https`, set by
    deploy/proxy). Trusting a forged header is harmless: it can only add `Secure` to cookies."""
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def client_address(request: Request, trust_proxy: bool) -> str:
    """The client's address for rate limits and throttling.

    Behind our proxy (TRUST_PROXY=1) the address is the LAST X-Forwarded-For entry: the one
    nginx or the Ingress appended for the peer it saw. Earlier entries come from the client
    and are forgeable, so using the first would let anyone dodge a per-address limit."""
    if trust_proxy:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            return forwarded[-1]
    return request.remote_addr or "unknown"


def secure_cookies_behind_tls(request: Request, response: Response) -> Response:
    """Add `Secure` to every cookie a response sets when the request came over HTTPS, so
    cookies are never sent back over plain HTTP even without DUMAS_SECURE_COOKIES=1."""
    if not behind_tls(request):
        return response
    cookies = response.headers.getlist("Set-Cookie")
    if cookies:
        del response.headers["Set-Cookie"]
        for cookie in cookies:
            attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
            response.headers.add("Set-Cookie", cookie if "secure" in attributes
                                 else cookie + "; Secure")
    return response


def set_session_cookie(response: Response, name: str, value: str, max_age: int) -> Response:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure_cookies(),
        path="/",
    )
    return response


_UNMATCHED = {
    404: ("not_found", "Tidak ditemukan", "Halaman atau alamat ini tidak ada."),
    405: ("method_not_allowed", "Metode tidak diizinkan",
          "Alamat ini tidak menerima permintaan dengan metode tersebut."),
}


def unmatched_response(request: Request, exc) -> Response:
    """The answer when no route matches: a page for browsers, JSON for everyone else."""
    code, title, message = _UNMATCHED.get(
        exc.code, ("bad_request", "Permintaan tidak valid", "Permintaan tidak dapat diproses."))
    headers = {}
    valid = getattr(exc, "valid_methods", None)
    if valid:
        headers["Allow"] = ", ".join(valid)
    if request.accept_mimetypes.accept_html:
        page = (f'<!doctype html><html lang="id"><head><meta charset="utf-8">'
                f"<title>{title}</title></head><body><h1>{title}</h1><p>{message}</p>"
                f'<p><a href="/">Kembali ke halaman utama</a></p></body></html>')
        return html_response(page, exc.code, headers)
    return error_response(exc.code, code, message, headers=headers)


def json_response(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        headers=headers or {},
        mimetype="application/json",
    )


def error_response(status, code, message, details=None, headers=None) -> Response:
    body = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return json_response(body, status, headers)


def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES, *, typed: bool = False):
    """The request's JSON body, or an HttpError (413, 415, 400) that says what is wrong.

    A body without a Content-Type is read as JSON unless `typed`: then only a JSON media type is
    accepted. Cookie-setting endpoints that take no CSRF token (the API sign-in) need it: a
    cross-site page can send a body with no Content-Type (`fetch` of a Blob, mode `no-cors`)
    without a CORS preflight, but never one typed `application/json`.
    """
    length = request.content_length
    if length is not None and length > max_bytes:
        raise HttpError(
            413, "payload_too_large",
            f"Data yang dikirim terlalu besar (maksimal {max_bytes // 1024} KiB).",
        )
    if length is None:
        # Chunked upload: Werkzeug hides the body unless the server marks the input as
        # terminated; eventlet's input decodes chunks and ends cleanly, so read it directly.
        raw = request.environ["wsgi.input"].read(max_bytes + 1)
    else:
        raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise HttpError(
            413, "payload_too_large",
            f"Data yang dikirim terlalu besar (maksimal {max_bytes // 1024} KiB).",
        )
    accepted = ("application/json",) if typed else ("application/json", "")
    if request.mimetype not in accepted and not request.mimetype.endswith("+json"):
        raise HttpError(415, "unsupported_media_type", "Data harus dikirim dalam format JSON.")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "invalid_json", "Data JSON tidak dapat dibaca.") from exc


def endpoint(service: str, route: str):
    """Wrap a nameko @http method: count and time it, and turn any error into a clean answer.

    HttpError -> its status; anything unexpected -> 500 with a generic message (logged), never a
    traceback to the client.
    """

    def decorate(func):
        # The metric children of this route, looked up once (labels() takes a lock and builds
        # a key at every call).
        duration = metrics.HTTP_DURATION.labels(service, route)
        answered = {}

        @wraps(func)
        def wrapper(self, request, *args, **kwargs):
            started = time.perf_counter()
            try:
                response = func(self, request, *args, **kwargs)
            except HttpError as exc:
                response = error_response(
                    exc.status, exc.code, exc.message, exc.details, exc.headers
                )
            except (OperationalError, InterfaceError) as exc:
                # Database unreachable or restarting: nothing was committed; ask to retry.
                log.warning("database unavailable in %s %s: %s", service, route, exc)
                response = _failure_response(
                    request, 503, "service_unavailable",
                    "Layanan sedang tidak tersedia sementara. Silakan coba lagi sebentar lagi.",
                    headers={"Retry-After": "5"},
                )
            except Exception:
                log.exception("unexpected error in %s %s", service, route)
                response = _failure_response(
                    request, 500, "internal_error",
                    "Terjadi kesalahan pada sistem. Silakan coba lagi beberapa saat lagi.",
                )
            secure_cookies_behind_tls(request, response)
            status = response.status_code
            counter = answered.get(status)
            if counter is None:
                counter = answered[status] = metrics.HTTP_REQUESTS.labels(service, route,
                                                                          str(status))
            counter.inc()
            duration.observe(time.perf_counter() - started)
            return response

        return wrapper

    return decorate


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not an API client): answer failures with a page."""
    if request.path.startswith("/api/"):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


FAILURE_PAGE = """<!doctype html>
<html lang="id"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main><h1>{title}</h1><p>{message}</p>
<p>Muat ulang halaman ini sebentar lagi. Isian formulir yang belum terkirim masih ada di
halaman sebelumnya.</p>
<p>Kode: {code}</p></main></body></html>
"""


def _failure_response(request, status, code, message, headers=None) -> Response:
    """503/500 as JSON for API clients, as a short Indonesian page for browsers (the form
    they filled is still in their browser: going back and sending again is safe)."""
    if not wants_page(request):
        return error_response(status, code, message, headers=headers)
    title = "Layanan sedang tidak tersedia" if status == 503 else "Terjadi kesalahan"
    page = FAILURE_PAGE.format(title=title, message=html_escape(message), code=code)
    return html_response(page, status=status, headers=headers)


def metrics_response() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, status=200, content_type=content_type)


def health_response(checks: dict[str, bool]) -> Response:
    ok = all(checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )
