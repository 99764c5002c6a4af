"""The inbox's HTTP edge: sessions, CSRF, templates, and the mapping of use-case errors to
answers (404 for anything a person may not see, 403, 409, 422). service.py routes to these."""

from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Response

from services.routing.casework import Actor, Conflict, Invalid, NotFound
from services.routing.domain import lifecycle
from services.routing.domain.registry import Registry
from services.routing.rollout import StageError
from shared import auth
from shared.catalogue import CATEGORY_BY_CODE, CHANNELS, CONFIDENTIALITY, STATUSES
from shared.web import HttpError, html_response, set_session_cookie
from shared.workdays import WIB

HERE = Path(__file__).parent
STATIC = HERE / "static"

ACTION_LABELS = {
    **{name: a.label for name, a in lifecycle.ACTIONS.items()},
    "routed": "Diteruskan", "info_added": "Pelapor menambah informasi", "rated": "Penilaian",
    "reopened": "Dibuka kembali oleh pelapor", "reopen_refused": "Permintaan buka kembali ditolak",
    "response_warning": "Peringatan batas tanggapan", "response_breach": "Batas tanggapan lewat",
    "resolution_warning": "Peringatan batas penyelesaian",
    "resolution_breach": "Batas penyelesaian lewat", "auto_closed": "Ditutup otomatis",
    "stage_changed": "Tahap unit diubah",
}
ACTOR_LABELS = {"system": "Sistem", "complainant": "Pelapor"}

_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def wib(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M")


def excerpt(text: str, length: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


def render(template: str, registry: Registry, user=None, status: int = 200, **context):
    def unit_name(code):
        unit = registry.get(code or "")
        return unit.name if unit else (code or "")

    html = _env.get_template(template).render(
        user=user, csrf=auth.csrf_token(user) if user else "", unit_name=unit_name, wib=wib,
        excerpt=excerpt, statuses=STATUSES, channels=CHANNELS, confidentiality=CONFIDENTIALITY,
        categories={c: v.name for c, v in CATEGORY_BY_CODE.items()},
        action_label=lambda a: ACTION_LABELS.get(a, a),
        actor_label=lambda e: ACTOR_LABELS.get(e["actor"], e["actor"]),
        **context,
    )
    return html_response(html, status=status, headers=_PAGE_HEADERS)


_PAGE_HEADERS = {"Cache-Control": "no-store"}


def redirect(location: str, status: int = 303) -> Response:
    return Response("", status=status, headers={"Location": location})


def login_redirect(request) -> Response:
    return redirect("/inbox/masuk?next=" + quote(request.full_path.rstrip("?"), safe="/"))


def current_session(request) -> auth.Session | None:
    return auth.read_session(request.cookies.get(auth.SESSION_COOKIE))


def actor_of(session: auth.Session) -> Actor:
    return Actor(session.username, session.role, session.unit_code)


def require_api_session(request, write: bool = False) -> auth.Session:
    """The signed-in person of an API call; 401 without, 403 for roles with no inbox,
    403 for a write without the CSRF header."""
    session = current_session(request)
    if session is None:
        raise HttpError(401, "unauthenticated", "Silakan masuk terlebih dahulu.")
    if session.role not in lifecycle.INBOX_ROLES:
        raise HttpError(403, "forbidden", "Peran Anda tidak memiliki akses ke kotak masuk unit.")
    if write and not auth.check_csrf(session, request.headers.get("X-CSRF-Token")):
        raise HttpError(403, "csrf_failed", "Token keamanan (CSRF) tidak valid.")
    return session


def page_error(registry, user, status: int, title: str, message: str):
    return render("error.html", registry, user, status=status, title=title, message=message)


def not_found_page(registry, user):
    return page_error(registry, user, 404, "Tidak ditemukan",
                      "Pengaduan tidak ditemukan atau bukan wewenang unit Anda.")


def to_http_error(exc: Exception) -> HttpError:
    """Use-case errors -> HTTP, in one place."""
    if isinstance(exc, NotFound):
        return HttpError(404, "not_found", "Pengaduan tidak ditemukan.")
    if isinstance(exc, lifecycle.LifecycleError):
        status = 403 if exc.code == "forbidden" else 422 if exc.code.startswith("text") else 409
        if exc.code == "unknown_action":
            status = 400
        return HttpError(status, exc.code, exc.message)
    if isinstance(exc, Invalid | StageError):
        status = 404 if exc.code == "unknown_unit" else 422
        return HttpError(status, exc.code, exc.message)
    if isinstance(exc, Conflict):
        return HttpError(409, "conflict",
                         "Pengaduan baru saja diubah orang lain. Muat ulang lalu coba lagi.")
    raise exc


# What the JSON API tells of an evidence file (attachments.for_page): its links are signed for
# the session that asked, like the detail page's, and authorised again at every download.
ATTACHMENT_FIELDS = ("name", "size", "media_type", "kind", "url", "thumb_url")


def complaint_json(row: dict, registry: Registry, actor: Actor, timeline=None,
                   files=None) -> dict:
    """A complaint for the JSON API; the detail (with `timeline`) also lists its evidence
    `files` (attachments.for_page)."""
    unit = registry.get(row["unit_code"])
    out = {
        "complaint_id": row["complaint_id"],
        "tracking_code": row["tracking_code"],
        "unit_code": row["unit_code"],
        "unit_name": unit.name if unit else row["unit_code"],
        "read_only": not lifecycle.can_act(actor.role, actor.unit_code, row["unit_code"]),
        "category": row["category"],
        "channel": row["channel"],
        "confidentiality": row["confidentiality"],
        "confidential": row["confidentiality"] == "confidential",
        "status": row["status"],
        "status_name": STATUSES.get(row["status"], row["status"]),
        "description": row["description"],
        "received_at": row["received_at"],
        "routed_at": row.get("routed_at"),
        "response_due_at": row["response_due_at"],
        "resolution_due_at": row["resolution_due_at"],
        "clock_paused": row.get("paused_at") is not None,
        "sla_breached": bool(row.get("response_breached_at") or row.get("resolution_breached_at")),
        "rule": row.get("rule"),
    }
    if timeline is not None:
        out.update(
            reason=row["reason"], public_response=row.get("public_response"),
            resolution=row.get("resolution"), close_reason=row.get("close_reason"),
            rating=row.get("rating"), seq=row["seq"],
            actions=[a.name for a in lifecycle.available_actions(
                actor.role, actor.unit_code, row["unit_code"], row["status"])],
            timeline=[{"at": e["at"], "actor": e["actor"], "actor_role": e["actor_role"],
                       "action": e["action"], "text": e["text"]} for e in timeline],
            attachments=[{k: f[k] for k in ATTACHMENT_FIELDS} for f in files or ()],
        )
    return out


def sign_in_response(result: dict, next_url: str | None) -> Response:
    _, token = auth.issue_session(result["username"], result["role"], result["unit_code"],
                                  result["display_name"])
    target = next_url if next_url and next_url.startswith("/inbox") else "/inbox"
    response = redirect(target)
    return set_session_cookie(response, auth.SESSION_COOKIE, token, auth.SESSION_LIFETIME)


def sign_out_response() -> Response:
    response = redirect("/inbox/masuk")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def static_file(name: str) -> Response:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        raise HttpError(404, "not_found", "Berkas tidak ditemukan.")
    mimetype = "text/css" if path.suffix == ".css" else "application/octet-stream"
    return Response(path.read_bytes(), mimetype=mimetype,
                    headers={"Cache-Control": "public, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})
