"""Routing rules: which unit receives a complaint, and why.

`decide` tries the rules in this order; the first that names a target wins:

1. `integritas`: integritas category, or integritas language in the text (pungli, suap, ...)
   -> the desk, never a unit named in the complaint: the unit may be the one reported.
2. `explicit_target`: a trusted unit hint (QR poster or unit channel) -> that unit.
   Untrusted hints are ignored.
3. `madrasah_named`: a madrasah named in the text -> that madrasah.
4. `kua_kecamatan`: KUA business (nikah, wakaf, zakat, kemasjidan) -> the KUA of the kecamatan
   from the form field, else from the desa/kelurahan (form field, then text), else a kecamatan
   named in the text ("KUA Merigi" beats a village named elsewhere in the text).
5. `pendidikan_desk`: education without an identifiable madrasah -> desk, section pendidikan.
6. `desk_triage`: everything else -> desk, section umum.

A target unit's stage then decides delivery: pilot/live -> the unit; off -> the desk (rule
`<rule>_off`); shadow -> the desk, with a read-only copy for the unit (rule `<rule>_shadow`).

Reasons are shown to staff and may reach the public status page, so they are in Bahasa
Indonesia and never name the unit an integritas complaint is about.
"""

import uuid
from dataclasses import dataclass, replace

from services.routing.domain.registry import Registry, Unit
from services.routing.domain.text import find_area_in_text, integrity_terms, tokens
from shared import wilayah
from shared.catalogue import CATEGORY_BY_CODE

DESK_LABEL = "Meja Dumas Kankemenag"
SECTION_GENERAL = "umum"
SECTION_EDUCATION = "pendidikan"
_REASON_MAX = 500  # ComplaintRoutedV1.reason


@dataclass(frozen=True)
class ComplaintFacts:
    """What routing knows about a complaint (from `complaint_received`)."""

    complaint_id: str | uuid.UUID
    category: str
    description: str
    kecamatan_code: str | None = None
    desa_code: str | None = None
    unit_hint: str | None = None
    unit_hint_trusted: bool = False
    channel: str = "web"
    confidentiality: str = "public"


@dataclass(frozen=True)
class Decision:
    unit_code: str
    unit: Unit
    rule: str  # machine name, e.g. "kua_kecamatan" or "kua_kecamatan_off"
    reason: str  # Bahasa Indonesia, for staff
    section: str | None = None  # desk section (umum | pendidikan) when the desk handles it
    shadow_copy_unit_code: str | None = None  # a `shadow` unit that gets a read-only copy


def decide(facts: ComplaintFacts, registry: Registry) -> Decision:
    """Route one complaint. Cost does not depend on the number of units in the registry."""
    category = CATEGORY_BY_CODE.get(facts.category)
    education = bool(category and category.education)

    terms = integrity_terms(facts.description)
    if facts.category == "integritas" or terms:
        why = "Pengaduan integritas ditangani langsung oleh Kankemenag"
        if terms:
            why += f" (terdeteksi: {', '.join(terms)})"
        if _names_a_unit(facts, registry):
            why += "; tidak diteruskan ke unit yang disebut dalam pengaduan"
        return _desk("integritas", why, registry, SECTION_GENERAL)

    if facts.unit_hint and facts.unit_hint_trusted:
        unit = registry.get(facts.unit_hint)
        if unit is not None:
            why = f"Pengaduan masuk melalui kanal resmi {unit.name}"
            return _to_unit("explicit_target", unit, why, registry, education)

    madrasah = registry.find_madrasah_in_text(facts.description)
    if madrasah is not None:
        why = f"Pengaduan menyebut {madrasah.name}"
        return _to_unit("madrasah_named", madrasah, why, registry, education)

    if category is not None and category.kua_business:
        target = _kua_target(facts, registry)
        if target is not None:
            kua, where = target
            why = f"Urusan {category.name} {where}"
            return _to_unit("kua_kecamatan", kua, why, registry, education)
        why = (
            f"Urusan {category.name}, tetapi kecamatannya tidak dapat ditentukan; "
            f"ditelaah {DESK_LABEL} bagian Umum"
        )
        return _desk("desk_triage", why, registry, SECTION_GENERAL)

    if education:
        why = (
            "Pengaduan pendidikan tanpa madrasah yang dapat dikenali; "
            f"ditangani {DESK_LABEL} bagian Pendidikan Madrasah"
        )
        return _desk("pendidikan_desk", why, registry, SECTION_EDUCATION)

    why = f"Tidak ada unit tujuan yang dapat ditentukan; ditelaah {DESK_LABEL} bagian Umum"
    return _desk("desk_triage", why, registry, SECTION_GENERAL)


def _names_a_unit(facts: ComplaintFacts, registry: Registry) -> bool:
    hinted = registry.get(facts.unit_hint) if facts.unit_hint else None
    if hinted is not None and hinted.type != "desk":
        return True
    if registry.find_madrasah_in_text(facts.description) is not None:
        return True
    return "kua" in tokens(facts.description) and find_area_in_text(facts.description) is not None


def _kua_target(facts: ComplaintFacts, registry: Registry) -> tuple[Unit, str] | None:
    """The KUA for the complaint and where its kecamatan came from, or None."""
    if facts.kecamatan_code:
        kua = registry.kua_for_kecamatan(facts.kecamatan_code)
        if kua is not None:
            return kua, f"di Kecamatan {_kecamatan_name(facts.kecamatan_code, kua)}"
    if facts.desa_code:
        kecamatan_code = ".".join(facts.desa_code.split(".")[:3])
        kua = registry.kua_for_kecamatan(kecamatan_code)
        if kua is not None:
            village = wilayah.villages().get(facts.desa_code)
            place = f"desa/kelurahan {village.name}, " if village else ""
            return kua, f"di {place}Kecamatan {_kecamatan_name(kecamatan_code, kua)}"
    area = find_area_in_text(facts.description)
    if area is not None:
        kua = registry.kua_for_kecamatan(area.kecamatan_code)
        if kua is not None:
            kecamatan = _kecamatan_name(area.kecamatan_code, kua)
            if area.desa_code is None:
                return kua, f"di Kecamatan {kecamatan} (disebut dalam uraian)"
            return kua, (
                f"di desa/kelurahan {area.matched_name}, Kecamatan {kecamatan} "
                "(disebut dalam uraian)"
            )
    return None


def _kecamatan_name(code: str, kua: Unit) -> str:
    area = wilayah.kecamatan().get(code)
    return area.name if area else kua.name


def _desk_section(registry: Registry, section: str) -> str | None:
    return section if registry.desk().section(section) else None


def _desk(rule: str, reason: str, registry: Registry, section: str) -> Decision:
    desk = registry.desk()
    return Decision(desk.code, desk, rule, reason[:_REASON_MAX], _desk_section(registry, section))


def _to_unit(rule: str, unit: Unit, why: str, registry: Registry, education: bool) -> Decision:
    """Apply the target unit's stage: deliver to it, or to the desk (with a shadow copy)."""
    section = SECTION_EDUCATION if education or unit.type == "madrasah" else SECTION_GENERAL
    if unit.type == "desk":
        return _desk(rule, f"{why}; ditangani {DESK_LABEL}", registry, section)
    if unit.accepting:
        return Decision(unit.code, unit, rule, f"{why}; diteruskan ke {unit.name}"[:_REASON_MAX])
    if unit.stage == "shadow":
        reason = (
            f"{why}. {unit.name} masih tahap bayangan di Dumas; ditangani {DESK_LABEL}, "
            f"{unit.name} menerima salinan baca-saja"
        )
        decision = _desk(f"{rule}_shadow", reason, registry, section)
        return replace(decision, shadow_copy_unit_code=unit.code)
    reason = f"{why}. {unit.name} belum aktif di Dumas; diteruskan ke {DESK_LABEL}"
    return _desk(f"{rule}_off", reason, registry, section)
