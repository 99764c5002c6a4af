"""Sample contexts, one per (event, audience) template pair.

Each is the documented contract of its templates: a unit test checks that the keys here are
exactly the variables the templates read. Values are invented but realistic for Kepahiang.
"""

from typing import Any

SAMPLE_BASE_URL = "https://dumas.kemenag-kepahiang.example"
_TRACKING_CODE = "KPH-26-0417"
_COMPLAINT_ID = "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"
_TRACKING_URL = f"{SAMPLE_BASE_URL}/lacak/{_TRACKING_CODE}"
_INBOX_URL = f"{SAMPLE_BASE_URL}/inbox/{_COMPLAINT_ID}"
_UNIT = "KUA Kecamatan Kabawetan"
_CATEGORY = "Nikah dan Rujuk"
_SUMMARY = (
    "Berkas pendaftaran nikah sudah lengkap sejak tiga minggu lalu, tetapi jadwal "
    "pemeriksaan belum juga ditetapkan."
)


def _complainant(**fields: Any) -> dict[str, Any]:
    return {
        "confidential": False,
        "tracking_code": _TRACKING_CODE,
        "tracking_url": _TRACKING_URL,
        **fields,
    }


def _unit(**fields: Any) -> dict[str, Any]:
    return {
        "tracking_code": _TRACKING_CODE,
        "unit_name": _UNIT,
        "inbox_url": _INBOX_URL,
        **fields,
    }


SAMPLE_CONTEXTS: dict[tuple[str, str], dict[str, Any]] = {
    ("complaint_received", "complainant"): _complainant(
        category_name=_CATEGORY,
        received_at="2026-11-23T02:14:00+00:00",
    ),
    ("complaint_routed", "complainant"): _complainant(
        unit_name=_UNIT,
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("complaint_acknowledged", "complainant"): _complainant(
        unit_name=_UNIT,
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("info_requested", "complainant"): _complainant(
        unit_name=_UNIT,
        question=(
            "Mohon sebutkan tanggal penyerahan berkas dan nama petugas yang menerima berkas.\n"
            "Bila ada, lampirkan foto tanda terima."
        ),
        answer_by="2026-12-01T16:59:00+00:00",
    ),
    ("complaint_responded", "complainant"): _complainant(
        unit_name=_UNIT,
        response=(
            "Mohon maaf atas keterlambatan. Pemeriksaan berkas nikah Bapak/Ibu dijadwalkan "
            "pada hari Kamis, 3 Desember 2026 pukul 09.00 WIB di kantor KUA Kecamatan "
            "Kabawetan."
        ),
        feedback_until="2026-12-14T16:59:00+00:00",
    ),
    ("complaint_resolved", "complainant"): _complainant(
        unit_name=_UNIT,
        resolution=(
            "Pemeriksaan berkas telah dilaksanakan pada 3 Desember 2026 dan akad nikah "
            "dijadwalkan pada 12 Desember 2026 di KUA Kecamatan Kabawetan."
        ),
        resolved_at="2026-12-15T03:30:00+00:00",
        feedback_until="2026-12-29T16:59:00+00:00",
    ),
    ("complaint_closed", "complainant"): _complainant(
        closed_at="2026-12-22T03:30:00+00:00",
        closing_note="Tidak ada tanggapan lanjutan dalam jangka waktu yang ditentukan.",
    ),
    ("complaint_routed", "unit"): _unit(
        confidential=False,
        category_name=_CATEGORY,
        channel_name="WhatsApp",
        summary=_SUMMARY,
        routed_at="2026-11-23T02:20:00+00:00",
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("info_received", "unit"): _unit(
        received_at="2026-11-30T04:05:00+00:00",
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("complaint_returned_rerouted", "unit"): _unit(
        confidential=False,
        previous_unit_name="KUA Kecamatan Kepahiang",
        return_reason="Alamat pelapor dan lokasi kejadian berada di wilayah Kecamatan Kabawetan.",
        category_name=_CATEGORY,
        summary=_SUMMARY,
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("sla_warning", "unit"): _unit(
        category_name=_CATEGORY,
        due_at="2026-12-07T09:00:00+00:00",
    ),
    ("sla_breach", "unit"): _unit(
        category_name=_CATEGORY,
        due_at="2026-12-07T09:00:00+00:00",
    ),
}
