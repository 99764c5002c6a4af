"""Routing decisions: every rule, every stage, and the same answers with 100,000 units."""


import pytest

from services.routing.domain.registry import load_seed, synthetic_registry
from services.routing.domain.rules import ComplaintFacts, Decision, decide

DESK = "kankemenag-kepahiang"


@pytest.fixture(scope="module")
def seed():
    return load_seed()


def make_facts(**overrides) -> ComplaintFacts:
    values = {
        "complaint_id": "3f1c1d5e-8a0b-4f8e-9a43-1b2c3d4e5f60",
        "category": "lainnya",
        "description": "Pelayanan kurang ramah.",
        "kecamatan_code": None,
        "desa_code": None,
        "unit_hint": None,
        "unit_hint_trusted": False,
        "channel": "web",
        "confidentiality": "public",
    }
    values.update(overrides)
    return ComplaintFacts(**values)


# --- integritas ---


def test_integritas_category_goes_to_the_desk(seed):
    decision = decide(make_facts(category="integritas", description="Petugas tidak jujur"), seed)
    assert (decision.unit_code, decision.rule, decision.section) == (DESK, "integritas", "umum")
    assert decision.reason.startswith("Pengaduan integritas ditangani langsung oleh Kankemenag")


def test_a_pungli_text_naming_a_madrasah_still_goes_to_the_desk(seed):
    facts = make_facts(
        category="pendidikan_madrasah",
        description="Ada pungli waktu daftar ulang di MTsN 2 Kepahiang",
    )
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule) == (DESK, "integritas")
    assert "MTsN 2" not in decision.reason  # the reason never names the reported unit
    assert "tidak diteruskan ke unit yang disebut" in decision.reason


def test_integritas_language_beats_a_trusted_qr_hint(seed):
    facts = make_facts(
        description="Bapak di loket minta uang rokok",
        unit_hint="kua-merigi",
        unit_hint_trusted=True,
    )
    assert decide(facts, seed).rule == "integritas"


def test_bribery_spelled_whatsapp_style_goes_to_the_desk(seed):
    facts = make_facts(category="nikah_rujuk", description="sy hrs nyogok dl di kua merigi")
    assert decide(facts, seed).rule == "integritas"


# --- explicit_target ---


def test_a_trusted_hint_of_a_pilot_unit_goes_to_that_unit(seed):
    facts = make_facts(unit_hint="kua-merigi", unit_hint_trusted=True)
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule) == ("kua-merigi", "explicit_target")
    assert decision.unit.name == "KUA Kecamatan Merigi"
    assert decision.section is None


def test_an_untrusted_hint_is_ignored_as_a_target(seed):
    facts = make_facts(unit_hint="kua-merigi", unit_hint_trusted=False)
    assert decide(facts, seed).unit_code == DESK
    assert decide(facts, seed).rule == "desk_triage"


def test_an_unknown_trusted_hint_falls_through_to_the_next_rules(seed):
    facts = make_facts(unit_hint="kua-tidak-ada", unit_hint_trusted=True, description="MAN 1")
    assert decide(facts, seed).rule == "madrasah_named"


def test_a_trusted_hint_of_an_off_unit_goes_to_the_desk(seed):
    facts = make_facts(unit_hint="kua-ujan-mas", unit_hint_trusted=True)
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule) == (DESK, "explicit_target_off")
    assert "KUA Kecamatan Ujan Mas belum aktif di Dumas" in decision.reason


# --- madrasah_named ---


@pytest.mark.parametrize(
    "description",
    [
        "Guru di MTsN 2 sering tidak masuk",
        "MTs Negeri 02 Kepahiang kurang bersih",
        "anak sy di mts n 02 tdk dapat rapor",
        "M.Ts.N 2 Kepahiang",
    ],
)
def test_complaint_naming_mtsn_02_goes_to_mtsn_2(seed, description):
    decision = decide(make_facts(category="pendidikan_madrasah", description=description), seed)
    assert (decision.unit_code, decision.rule) == ("mtsn-2-kepahiang", "madrasah_named")
    assert decision.reason == (
        "Pengaduan menyebut MTsN 2 Kepahiang; diteruskan ke MTsN 2 Kepahiang"
    )


def test_complaint_naming_man_i_goes_to_man_1(seed):
    decision = decide(make_facts(description="Ijazah di MAN I belum keluar"), seed)
    assert decision.unit_code == "man-1-kepahiang"


def test_complaint_naming_min_7_of_an_off_unit_goes_to_the_education_desk(seed):
    decision = decide(make_facts(description="min 7 kepahiang atapnya bocor"), seed)
    assert (decision.unit_code, decision.rule, decision.section) == (
        DESK,
        "madrasah_named_off",
        "pendidikan",
    )
    assert "MIN 7 Kepahiang belum aktif di Dumas" in decision.reason


# --- kua_kecamatan ---


def test_kua_business_with_a_kecamatan_field_goes_to_that_kua(seed):
    facts = make_facts(category="nikah_rujuk", kecamatan_code="17.08.05")
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule) == ("kua-merigi", "kua_kecamatan")
    assert decision.reason == (
        "Urusan Nikah dan Rujuk di Kecamatan Merigi; diteruskan ke KUA Kecamatan Merigi"
    )


def test_kua_business_with_only_a_desa_field_goes_to_the_kua_of_its_kecamatan(seed):
    facts = make_facts(category="wakaf", desa_code="17.08.04.2001")
    decision = decide(facts, seed)
    assert decision.unit_code == "kua-kepahiang"
    assert "Kelilik" in decision.reason


def test_kua_business_with_a_typod_desa_in_the_text_goes_to_its_kua(seed):
    facts = make_facts(category="zakat_infak", description="zakat di desa sukamerindo blm dibagi")
    assert decide(facts, seed).unit_code == "kua-kepahiang"


def test_the_kecamatan_field_wins_over_places_in_the_text(seed):
    facts = make_facts(
        category="nikah_rujuk", kecamatan_code="17.08.04", description="KUA Ujan Mas"
    )
    assert decide(facts, seed).unit_code == "kua-kepahiang"


@pytest.mark.parametrize("written", ["Kabawetan", "Kebawetan"])
def test_kua_kabawetan_and_kebawetan_reach_the_same_kua(seed, written):
    facts = make_facts(category="nikah_rujuk", description=f"Pelayanan KUA {written} lambat")
    seed_live = seed.with_stage("kua-kebawetan", "live")
    assert decide(facts, seed_live).unit_code == "kua-kebawetan"


def test_kua_business_for_an_off_kua_goes_to_the_desk_with_the_reason(seed):
    facts = make_facts(category="nikah_rujuk", description="daftar nikah di kua ujan mas ribet")
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule, decision.section) == (
        DESK,
        "kua_kecamatan_off",
        "umum",
    )
    assert decision.reason.endswith(
        "KUA Kecamatan Ujan Mas belum aktif di Dumas; diteruskan ke Meja Dumas Kankemenag"
    )


def test_kua_business_for_a_shadow_kua_goes_to_the_desk_with_a_copy_for_the_kua(seed):
    registry = seed.with_stage("kua-ujan-mas", "shadow")
    facts = make_facts(category="kemasjidan", kecamatan_code="17.08.02")
    decision = decide(facts, registry)
    assert decision.unit_code == DESK
    assert decision.rule == "kua_kecamatan_shadow"
    assert decision.shadow_copy_unit_code == "kua-ujan-mas"
    assert "salinan" in decision.reason


def test_a_live_kua_receives_its_complaints(seed):
    registry = seed.with_stage("kua-ujan-mas", "live")
    facts = make_facts(category="nikah_rujuk", kecamatan_code="17.08.02")
    decision = decide(facts, registry)
    assert (decision.unit_code, decision.shadow_copy_unit_code) == ("kua-ujan-mas", None)


def test_kua_business_without_a_place_goes_to_desk_triage(seed):
    facts = make_facts(category="nikah_rujuk", description="Jadwal nikah diundur tanpa kabar")
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule, decision.section) == (DESK, "desk_triage", "umum")


def test_a_place_in_a_non_kua_complaint_does_not_route_to_a_kua(seed):
    facts = make_facts(category="haji_umrah", description="Manasik di Merigi dibatalkan")
    assert decide(facts, seed).rule == "desk_triage"


# --- pendidikan_desk and desk_triage ---


def test_education_without_a_madrasah_goes_to_the_desks_education_section(seed):
    facts = make_facts(category="guru_tendik", description="Tunjangan sertifikasi telat")
    decision = decide(facts, seed)
    assert (decision.unit_code, decision.rule, decision.section) == (
        DESK,
        "pendidikan_desk",
        "pendidikan",
    )


def test_everything_else_goes_to_desk_triage_general_section(seed):
    decision = decide(make_facts(category="pelayanan_ptsp"), seed)
    assert (decision.unit_code, decision.rule, decision.section) == (DESK, "desk_triage", "umum")
    assert decision.unit is seed.desk()


def test_decisions_fit_the_complaint_routed_contract(seed):
    decision = decide(make_facts(category="nikah_rujuk", description="kua sbrg musi"), seed)
    assert isinstance(decision, Decision)
    assert len(decision.reason) <= 500 and len(decision.rule) <= 64


# --- scale ---

CASES = [
    make_facts(category="pendidikan_madrasah", description="MTs Negeri 02 Kepahiang"),
    make_facts(description="Ada pungli di MAN 1"),
    make_facts(category="nikah_rujuk", description="KUA Kabawetan lambat"),
    make_facts(category="nikah_rujuk", description="nikah di desa tangsi durn"),
    make_facts(category="wakaf", kecamatan_code="17.08.05"),
    make_facts(category="guru_tendik", description="tunjangan telat"),
    make_facts(unit_hint="man-1-kepahiang", unit_hint_trusted=True),
    make_facts(description="min 7 kepahiang"),
    make_facts(category="lainnya", description="lainnya"),
]


@pytest.fixture(scope="module")
def huge():
    return synthetic_registry(100_000)


def test_a_100000_unit_registry_returns_the_same_decisions(seed, huge):
    assert len(huge) == 100_000
    for facts in CASES:
        assert decide(facts, huge) == decide(facts, seed)


def test_deciding_never_walks_the_units(seed, huge, monkeypatch):
    def walked(self):
        raise AssertionError("decide() scanned every unit")

    monkeypatch.setattr(type(huge), "units", walked)
    for facts in CASES:
        decide(facts, huge)
