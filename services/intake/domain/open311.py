"""Open311 GeoReport v2 facade: our categories as services, our complaints as requests.

Mapping decisions:
- ``service_code`` is the category code; ``service_request_id`` is the tracking code.
- status: ``closed`` once the complaint is resolved or closed, ``open`` before.
- ``description`` is never returned (complaint texts are not published; the public view is an
  allow-list), ``status_notes`` carries the Indonesian status label instead.
- ``agency_responsible`` is the unit handling it; ``expected_datetime`` the SLA due time.
"""

from collections.abc import Mapping
from typing import Any

from shared.catalogue import CATEGORIES, CATEGORY_BY_CODE, STATUSES
from shared.wilayah import kecamatan

CLOSED_STATUSES = frozenset({"resolved", "closed"})


def services() -> list[dict]:
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": c.description,
            "metadata": False,
            "type": "realtime",
            "keywords": c.code.replace("_", ","),
            "group": "pendidikan" if c.education else ("kua" if c.kua_business else "umum"),
        }
        for c in CATEGORIES
    ]


def open311_status(status: str) -> str:
    return "closed" if status in CLOSED_STATUSES else "open"


def submission_from_form(form: Mapping[str, str]) -> dict:
    """Our submission body from an Open311 POST (form fields); unknown fields are refused by
    the submission schema, so only those mapped here reach it. ``attribute[kecamatan_code]``,
    ``attribute[desa_code]`` and ``attribute[confidentiality]`` carry our own fields."""
    name = " ".join(p for p in (form.get("first_name"), form.get("last_name")) if p) or None
    body: dict[str, Any] = {
        "channel": "open311",
        "category": form.get("service_code"),
        "description": form.get("description"),
        "kecamatan_code": form.get("attribute[kecamatan_code]"),
        "desa_code": form.get("attribute[desa_code]"),
        "confidentiality": form.get("attribute[confidentiality]") or "public",
        "complainant": {"name": name, "phone": form.get("phone"), "email": form.get("email")},
    }
    return body


def request_view(row: Mapping[str, Any]) -> dict:
    category = CATEGORY_BY_CODE.get(row["category"])
    area = kecamatan().get(row.get("kecamatan_code") or "")
    return {
        "service_request_id": row["tracking_code"],
        "status": open311_status(row["status"]),
        "status_notes": STATUSES.get(row["status"], row["status"]),
        "service_name": category.name if category else row["category"],
        "service_code": row["category"],
        "agency_responsible": row.get("unit_name"),
        "service_notice": None,
        "requested_datetime": _iso(row.get("created_at")),
        "updated_datetime": _iso(row.get("updated_at")),
        "expected_datetime": _iso(row.get("due_at")),
        "address": f"Kecamatan {area.name}, Kabupaten Kepahiang" if area else None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def error(code: int, description: str) -> list[dict]:
    """The spec's error format: a list of {code, description}."""
    return [{"code": code, "description": description}]


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
