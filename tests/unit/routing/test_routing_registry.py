"""The unit registry: seed data, indexes, stages, synthetic registries."""

from dataclasses import FrozenInstanceError

import pytest

from services.routing.domain.registry import (
    Registry,
    Unit,
    load_seed,
    synthetic_registry,
)
from shared import wilayah


@pytest.fixture(scope="module")
def seed():
    return load_seed()


def test_the_seed_has_one_desk_with_general_and_education_sections(seed):
    desk = seed.desk()
    assert desk.code == "kankemenag-kepahiang"
    assert desk.type == "desk"
    assert desk.stage == "live"
    assert [s.code for s in desk.sections] == ["umum", "pendidikan"]


def test_the_seed_has_a_kua_for_every_kecamatan(seed):
    for code, area in wilayah.kecamatan().items():
        kua = seed.kua_for_kecamatan(code)
        assert kua.code == f"kua-{wilayah.slug(area.name)}"
        assert kua.name == f"KUA Kecamatan {area.name}"
    assert seed.kua_for_kecamatan("17.08.06").code == "kua-kebawetan"


def test_the_seed_pilots_a_few_units_and_keeps_the_rest_off(seed):
    stages = {u.code: u.stage for u in seed.units() if u.type != "desk"}
    pilots = {c for c, s in stages.items() if s == "pilot"}
    assert pilots == {"kua-kepahiang", "kua-merigi", "mtsn-2-kepahiang", "man-1-kepahiang"}
    assert set(stages.values()) == {"pilot", "off"}


def test_every_seed_unit_has_fictional_office_and_head_contacts(seed):
    for unit in seed.units():
        assert unit.contacts.email.endswith("@kemenag.example")
        assert unit.contacts.whatsapp.startswith("+62811000000")
        assert unit.head.whatsapp.startswith("+62811000000")
        assert unit.head.title


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("MTsN 2", "mtsn-2-kepahiang"),
        ("MTs Negeri 02 Kepahiang", "mtsn-2-kepahiang"),
        ("MAN 1", "man-1-kepahiang"),
        ("min 7 kepahiang", "min-7-kepahiang"),
        ("anak saya di MAN I Kepahiang", "man-1-kepahiang"),
        ("MA Al-Munawaroh 2", "mas-al-munawwaroh-2"),
        ("sudah dua minggu berkas di madrasah tsanawiyah negeri 2 belum diurus",
         "mtsn-2-kepahiang"),
        ("keluhan guru: ma al munawaroh 2, lalu mtsn 2", "mas-al-munawwaroh-2"),
    ],
)
def test_madrasahs_are_found_by_name_or_alias(seed, text, code):
    assert seed.find_madrasah_in_text(text).code == code


def test_a_madrasah_number_must_match_exactly(seed):
    assert seed.find_madrasah_in_text("MAN 12 Kepahiang") is None
    assert seed.find_madrasah_in_text("MTsN 3") is None


def test_with_stage_returns_a_new_registry_and_leaves_the_old_one_alone(seed):
    changed = seed.with_stage("kua-ujan-mas", "shadow")
    assert changed.get("kua-ujan-mas").stage == "shadow"
    assert changed.kua_for_kecamatan("17.08.02").stage == "shadow"
    assert seed.get("kua-ujan-mas").stage == "off"


def test_units_are_immutable(seed):
    with pytest.raises(FrozenInstanceError):
        seed.desk().stage = "off"


def test_a_registry_without_a_desk_is_rejected():
    with pytest.raises(ValueError, match="desk"):
        Registry([Unit("kua-x", "KUA X", "kua", "live", "17.08.01")])


def test_an_alias_naming_two_madrasahs_is_rejected(seed):
    twin = Unit("man-1-lain", "MAN 1 Lain", "madrasah", "off", aliases=("MAN I",))
    with pytest.raises(ValueError, match="alias"):
        Registry([*seed.units(), twin])


def test_an_unknown_stage_is_rejected():
    with pytest.raises(ValueError, match="stage"):
        Unit("kua-x", "KUA X", "kua", "on", "17.08.01")


def test_a_synthetic_registry_keeps_the_seed_and_adds_units(seed):
    big = synthetic_registry(1_000)
    assert len(big) == 1_000
    assert big.desk() == seed.desk()
    assert all(big.get(u.code) == u for u in seed.units())
    assert len(synthetic_registry(10)) == len(seed)  # never smaller than the seed
