"""Statistics requests at the HTTP edge: parse the period and filters, and scope them to what the
person may see. Errors are HttpErrors with an Indonesian message."""

import re
from datetime import date, timedelta

from services.reporting.handlers import StatsQuery
from shared.auth import Session
from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY
from shared.web import HttpError

# Roles that may open the staff dashboard and exports; unit heads only for their own unit.
STAFF_ROLES = frozenset({"desk_admin", "auditor", "unit_head"})
# Roles that may download the monthly recap of all units.
RECAP_ROLES = frozenset({"desk_admin", "auditor"})
MAX_PERIOD_DAYS = 366 * 5
# Dates a statistics request may name (the service started in 2026).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)

_UNIT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KECAMATAN = re.compile(r"^\d{2}\.\d{2}\.\d{2}$")
PARAMS = {
    "unit": ("unit_code", lambda v: bool(_UNIT.match(v)), "Kode unit tidak dikenal."),
    "kecamatan": ("kecamatan_code", lambda v: bool(_KECAMATAN.match(v)),
                  "Kode kecamatan harus berbentuk 17.08.05."),
    "channel": ("channel", lambda v: v in CHANNELS, "Kanal tidak dikenal."),
    "category": ("category", lambda v: v in CATEGORY_CODES, "Kategori tidak dikenal."),
    "confidentiality": ("confidentiality", lambda v: v in CONFIDENTIALITY,
                        "Tingkat kerahasiaan tidak dikenal."),
}


def _date(args, name: str) -> date | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise HttpError(400, "invalid_date",
                        f"Tanggal '{name}' harus berformat TTTT-BB-HH, misalnya 2026-11-01.",
                        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:  # far dates overflow the calendar arithmetic
        raise HttpError(400, "invalid_date", f"Tanggal '{name}' harus antara "
                        f"{FIRST_DAY.isoformat()} dan {LAST_DAY.isoformat()}.")
    return day


def parse(args) -> StatsQuery:
    """A StatsQuery from request arguments (from, to, unit, kecamatan, channel, category,
    confidentiality, trend); empty values mean "all"."""
    date_from, date_to = _date(args, "from"), _date(args, "to")
    if date_from and date_to:
        if date_to < date_from:
            raise HttpError(400, "invalid_period",
                            "Tanggal akhir tidak boleh sebelum tanggal awal.")
        if (date_to - date_from) > timedelta(days=MAX_PERIOD_DAYS):
            raise HttpError(400, "period_too_long", "Periode paling panjang lima tahun.")
    filters = {}
    for param, (dimension, valid, message) in PARAMS.items():
        value = (args.get(param) or "").strip()
        if value:
            if not valid(value):
                raise HttpError(400, f"invalid_{param}", message)
            filters[dimension] = value
    trend = (args.get("trend") or "month").strip()
    if trend not in ("week", "month"):
        raise HttpError(400, "invalid_trend", "Tren hanya dapat per minggu atau per bulan.")
    return StatsQuery(date_from, date_to, filters, trend)


def month_period(month: str) -> tuple[date, date]:
    """'2026-11' -> (2026-11-01, 2026-11-30)."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise HttpError(400, "invalid_month",
                        "Bulan harus berformat TTTT-BB, misalnya 2026-11.") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


def require_staff(session: Session | None) -> Session:
    if session is None:
        raise HttpError(401, "not_signed_in", "Silakan masuk terlebih dahulu.")
    if session.role not in STAFF_ROLES:
        raise HttpError(403, "forbidden", "Akun Anda tidak berhak melihat laporan.")
    return session


def scoped(query: StatsQuery, session: Session | None) -> StatsQuery:
    """Unit heads see their own unit only; anyone else asking for it is refused, not widened."""
    if session is None or session.role not in ("unit_head", "unit_operator"):
        return query
    asked = query.filters.get("unit_code")
    if asked is not None and asked != session.unit_code:
        raise HttpError(403, "forbidden_unit", "Anda hanya dapat melihat laporan unit Anda.")
    return StatsQuery(query.date_from, query.date_to,
                      {**query.filters, "unit_code": session.unit_code or "-"}, query.trend)


def public(query: StatsQuery) -> StatsQuery:
    """The public view: aggregate numbers for the whole office (no per-unit filter)."""
    if "unit_code" in query.filters:
        raise HttpError(403, "sign_in_for_units",
                        "Statistik per unit hanya untuk petugas. Silakan masuk.")
    return query


PUBLIC_KEYS = ("period", "filters", "total", "by_status", "by_kecamatan", "by_channel",
               "by_category", "by_confidentiality", "backlog", "working_days", "sla",
               "satisfaction", "trend")


def public_view(stats: dict) -> dict:
    return {k: stats[k] for k in PUBLIC_KEYS}
