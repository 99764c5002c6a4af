"""The inbox CSV export: Indonesian headers, WIB times, no text of a confidential complaint for
units, no spreadsheet formulas from complainants' words."""

import csv
import io
from datetime import UTC, datetime

from services.routing import exports
from shared.workdays import WIB

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 10:00 WIB


def row(**overrides):
    data = {
        "complaint_id": "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10", "tracking_code": "DMS-AAAA-BBBB",
        "unit_code": "kua-merigi", "shadow_unit_code": None, "category": "nikah_rujuk",
        "channel": "web", "confidentiality": "public", "status": "routed", "routed_at": AT,
        "received_at": AT, "response_due_at": datetime(2026, 12, 3, 16, tzinfo=WIB),
        "resolution_due_at": datetime(2026, 12, 7, 16, tzinfo=WIB), "responded_at": None,
        "response_breached_at": None, "resolution_breached_at": None,
        "response_warned_at": None, "resolution_warned_at": None,
        "description": "Pendaftaran nikah belum diproses", "paused_at": None, "rule": "r",
    }
    data.update(overrides)
    return data


def parse(body: bytes) -> list[dict]:
    assert body.startswith("\ufeff".encode())  # Excel reads the BOM as UTF-8
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))


def names(code):
    return {"kua-merigi": "KUA Kecamatan Merigi"}.get(code, code)


def test_a_row_has_indonesian_headers_names_and_wib_times():
    [out] = parse(exports.to_csv([row()], "unit_operator", names))
    assert list(out) == exports.HEADERS
    assert out["Unit"] == "KUA Kecamatan Merigi"
    assert out["Kategori"] == "Nikah dan Rujuk"
    assert out["Status"] == "Diteruskan ke unit"
    assert out["Diterima (WIB)"] == "30-11-2026 10:00"
    assert out["Batas tanggapan (WIB)"] == "03-12-2026 16:00"
    assert out["Terlambat"] == "tidak"
    assert out["Ringkasan"] == "Pendaftaran nikah belum diproses"


def test_units_get_no_text_of_a_confidential_complaint_but_the_desk_does():
    secret = row(confidentiality="confidential", description="Nama saya Siti, rumah di Pulo Geto")
    [for_unit] = parse(exports.to_csv([secret], "unit_head", names))
    assert for_unit["Kerahasiaan"] == "Rahasia"
    assert "Siti" not in for_unit["Ringkasan"] and "Pulo Geto" not in for_unit["Ringkasan"]
    [for_desk] = parse(exports.to_csv([secret], "desk_admin", names))
    assert "Pulo Geto" in for_desk["Ringkasan"]


def test_a_complainants_text_never_becomes_a_spreadsheet_formula():
    evil = row(description='=HYPERLINK("http://contoh.invalid","klik")')
    [out] = parse(exports.to_csv([evil], "desk_admin", names))
    assert out["Ringkasan"].startswith("'=")
    for start in ("+1", "-1", "@SUM(A1)"):
        [out] = parse(exports.to_csv([row(description=start)], "desk_admin", names))
        assert out["Ringkasan"] == "'" + start


def test_breaches_are_named():
    late = row(response_breached_at=AT, resolution_breached_at=AT)
    [out] = parse(exports.to_csv([late], "unit_operator", names))
    assert out["Terlambat"] == "tanggapan, penyelesaian"
