"""The inbox list as a CSV file (`/inbox/ekspor.csv`, `/api/v1/inbox/export.csv`).

Who sees what is decided before this module (casework.export uses the inbox's own filter: a unit
only ever gets its own complaints and its read-only copies). Here: Indonesian headers, times in
WIB, Excel-friendly UTF-8 with BOM and semicolons (as reporting's export), no summary of a
confidential complaint for unit staff, and no cell that a spreadsheet would run as a formula.
"""

import csv
import io
from datetime import datetime

from services.routing.domain import lifecycle
from shared.catalogue import CATEGORY_BY_CODE, CHANNELS, CONFIDENTIALITY, STATUSES
from shared.workdays import WIB

HEADERS = [
    "Kode pelacakan", "Unit", "Kategori", "Kanal", "Kerahasiaan", "Status",
    "Diterima (WIB)", "Diteruskan (WIB)", "Batas tanggapan (WIB)", "Batas penyelesaian (WIB)",
    "Terlambat", "Ringkasan",
]
CONFIDENTIAL_SUMMARY = "(rahasia: uraian hanya di halaman pengaduan)"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M")


def _cell(value: str) -> str:
    """Text a spreadsheet shows as text: a leading =, +, -, @ would make it a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _summary(row: dict, role: str, length: int = 300) -> str:
    if row["confidentiality"] == "confidential" and role in lifecycle.UNIT_ROLES:
        return CONFIDENTIAL_SUMMARY
    text = " ".join((row["description"] or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _late(row: dict) -> str:
    late = [name for name, column in (("tanggapan", "response_breached_at"),
                                      ("penyelesaian", "resolution_breached_at")) if row[column]]
    return ", ".join(late) if late else "tidak"


def to_csv(rows: list[dict], role: str, unit_name) -> bytes:
    """The rows as CSV; `unit_name(code)` gives a unit's name."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow([_cell(str(v)) for v in (
            row["tracking_code"],
            unit_name(row["unit_code"]),
            CATEGORY_BY_CODE[row["category"]].name if row["category"] in CATEGORY_BY_CODE
            else row["category"],
            CHANNELS.get(row["channel"], row["channel"]),
            CONFIDENTIALITY.get(row["confidentiality"], row["confidentiality"]),
            STATUSES.get(row["status"], row["status"]),
            _time(row["received_at"]),
            _time(row["routed_at"]),
            _time(row["response_due_at"]),
            _time(row["resolution_due_at"]),
            _late(row),
            _summary(row, role),
        )])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def filename(unit_code: str | None, today: datetime) -> str:
    day = today.astimezone(WIB).strftime("%Y-%m-%d")
    return f"pengaduan-{unit_code or 'semua-unit'}-{day}.csv"
