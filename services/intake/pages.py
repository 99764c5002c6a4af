"""Rendering helpers for intake's pages: templates, the form-protection cookie, form bodies,
Indonesian dates. No nameko here."""

import hmac
import secrets
from datetime import UTC, timedelta, timezone

from werkzeug.exceptions import RequestEntityTooLarge

from shared.catalogue import CATEGORIES
from shared.web import MAX_BODY_BYTES, HttpError, html_response, secure_cookies
from shared.wilayah import kecamatan, villages

FORM_COOKIE = "dumas_form"
WIB = timezone(timedelta(hours=7))
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
MESSAGE_LABELS = {
    "question": "Pertanyaan dari unit",
    "response": "Jawaban unit",
    "resolution": "Penyelesaian",
    "closed": "Pengaduan ditutup",
    "info_added": "Keterangan tambahan Anda",
    "rating": "Penilaian Anda",
    "reopen": "Permintaan buka kembali",
    "duplicate": "Pengiriman ulang",
}
SLA_DAYS = 5  # the longest response target of routing's SLA table, in working days


def wib(moment) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        from datetime import datetime

        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(WIB)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}, {local:%H.%M} WIB"


def form_token(request) -> tuple[str, bool]:
    """The double-submit token of this browser (cookie), and whether it must be set now."""
    current = request.cookies.get(FORM_COOKIE)
    if current and 20 <= len(current) <= 64:
        return current, False
    return secrets.token_urlsafe(24), True


def form_token_ok(request, form) -> bool:
    cookie, sent = request.cookies.get(FORM_COOKIE), form.get("csrf")
    # bytes: compare_digest refuses non-ASCII str (a hostile token must be a 403, not a 500)
    return bool(cookie and sent) and hmac.compare_digest(cookie.encode(), sent.encode())


def read_form(request):
    request.max_content_length = MAX_BODY_BYTES
    try:
        return request.form
    except RequestEntityTooLarge:
        raise HttpError(
            413, "payload_too_large",
            f"Data yang dikirim terlalu besar (maksimal {MAX_BODY_BYTES // 1024} KiB).",
        ) from None


def render(templates, name: str, status: int = 200, *, set_form_cookie: str | None = None,
           headers: dict | None = None, **context):
    response = html_response(templates.get_template(name).render(**context), status, headers)
    if set_form_cookie:
        response.set_cookie(FORM_COOKIE, set_form_cookie, httponly=True, samesite="Strict",
                            secure=secure_cookies(), path="/")
    return response


def form_context() -> dict:
    areas = sorted(kecamatan().values(), key=lambda a: a.name)
    desa: dict[str, list] = {}
    for village in sorted(villages().values(), key=lambda a: a.name):
        desa.setdefault(village.kecamatan_code, []).append(village)
    return {"categories": CATEGORIES, "kecamatan": areas, "desa": desa}


def errors_by_field(details) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for detail in details:
        out.setdefault(detail["field"] or "_", []).append(detail["message"])
    return out


def submission_from_form(form, channel: str) -> dict:
    return {
        "channel": channel,
        "category": form.get("category"),
        "description": form.get("description"),
        "kecamatan_code": form.get("kecamatan_code"),
        "desa_code": form.get("desa_code"),
        "confidentiality": form.get("confidentiality") or "public",
        "complainant": {
            "name": form.get("name"), "phone": form.get("phone"), "email": form.get("email"),
        },
    }


def spell_code(code: str) -> str:
    """A tracking code read out at the desk: symbol by symbol, groups separated."""
    return " / ".join(" ".join(group) for group in code.split("-"))


def dated(view: dict) -> dict:
    for entry in view.get("history", []):
        entry["at_text"] = wib(entry["at"])
    for message in view.get("messages", []):
        message["at_text"] = wib(message["at"])
    return view
