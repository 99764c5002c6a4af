"""Property-based tests (hypothesis) of routing's text normalization and rules: `decide` on
arbitrary complaints never fails, is deterministic, and never hands an integritas complaint to a
unit, least of all the one it names."""

import re
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.routing.domain.registry import load_seed
from services.routing.domain.rules import ComplaintFacts, decide
from services.routing.domain.text import (
    find_area_in_text,
    integrity_terms,
    normalize,
    tokens,
)
from shared.catalogue import CATEGORY_CODES
from shared.wilayah import kecamatan, villages

FAST = settings(max_examples=200, deadline=None, database=None)
REGISTRY = load_seed()
DESK = REGISTRY.desk().code
UNITS = sorted(REGISTRY.units(), key=lambda u: u.code)
NON_DESK = [u for u in UNITS if u.type != "desk"]
KNOWN_RULES = re.compile(
    r"^(integritas|desk_triage|pendidikan_desk|"
    r"(explicit_target|madrasah_named|kua_kecamatan)(_off|_shadow)?)$"
)
# Ways people write integritas language (each one is detected by integrity_terms).
INTEGRITY_PHRASES = [
    "pungli", "dipungli", "suap", "disogok", "nyogok", "gratifikasi", "uang pelicin", "pemerasan",
    "diperas", "calo", "korupsi", "pungutan liar", "pungutan2 liar", "biaya tidak resmi",
    "biaya tdk resmi", "uang rokok", "uang kopi", "uang terima kasih", "uang damai",
    "diminta uang", "minta imbalan", "dimintai uang", "PUNGLI", "Suapnya",
]
# Words that steer the rules: unit names and aliases, places, madrasah and KUA vocabulary.
VOCABULARY = sorted(
    {w for u in UNITS for alias in (u.name, *u.aliases) for w in alias.split()}
    | {a.name for a in villages().values()}
    | {a.name for a in kecamatan().values()}
    | {"KUA", "kecamatan", "desa", "kelurahan", "madrasah", "MTs", "N", "negeri", "nikah",
       "sekolah", "guru", "yg", "tdk", "di", "II", "02", "minta", "uang"}
)

words_text = st.lists(
    st.sampled_from(VOCABULARY) | st.sampled_from(INTEGRITY_PHRASES) | st.text(max_size=8),
    max_size=14,
).map(" ".join)
descriptions = st.text(max_size=200) | words_text
categories = st.sampled_from(CATEGORY_CODES) | st.text(max_size=20)
kecamatan_codes = st.none() | st.sampled_from(sorted(kecamatan())) | st.text(max_size=16)
desa_codes = st.none() | st.sampled_from(sorted(villages())) | st.text(max_size=20)
unit_hints = st.none() | st.sampled_from([u.code for u in UNITS]) | st.text(max_size=16)


@st.composite
def complaint_facts(draw, description=descriptions, category=categories):
    return ComplaintFacts(
        complaint_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        category=draw(category),
        description=draw(description),
        kecamatan_code=draw(kecamatan_codes),
        desa_code=draw(desa_codes),
        unit_hint=draw(unit_hints),
        unit_hint_trusted=draw(st.booleans()),
        channel=draw(st.sampled_from(["web", "qr", "ptsp", "whatsapp", "portal"])),
        confidentiality=draw(st.sampled_from(["public", "confidential", "anonymous"])),
    )


def _assert_consistent(decision, facts):
    assert decision.unit is REGISTRY[decision.unit_code]
    assert KNOWN_RULES.match(decision.rule), decision.rule
    assert decision.reason and len(decision.reason) <= 500
    if decision.unit_code != DESK:
        # A complaint reaches a unit only when that unit is on Dumas (pilot or live).
        assert decision.unit.accepting and decision.unit.type != "desk"
        assert decision.shadow_copy_unit_code is None
    if decision.shadow_copy_unit_code is not None:
        assert decision.unit_code == DESK
        assert REGISTRY[decision.shadow_copy_unit_code].stage == "shadow"
    if facts.category == "integritas" or integrity_terms(facts.description):
        assert (decision.unit_code, decision.rule) == (DESK, "integritas")
        assert decision.shadow_copy_unit_code is None


@FAST
@given(complaint_facts())
@example(ComplaintFacts("x", "integritas", "", unit_hint="mtsn-2-kepahiang",
                        unit_hint_trusted=True))
@example(ComplaintFacts("x", "nikah_rujuk", "\x00" * 50, kecamatan_code="", desa_code="..."))
def test_decide_never_fails_and_every_decision_is_consistent(facts):
    _assert_consistent(decide(facts, REGISTRY), facts)


@FAST
@given(complaint_facts(), st.uuids())
def test_the_decision_is_deterministic_and_ignores_the_complaint_id(facts, other_id):
    first = decide(facts, REGISTRY)
    tokens.cache_clear()  # a cold cache must not change anything either
    again = decide(facts, REGISTRY)
    renamed = decide(
        ComplaintFacts(**{**facts.__dict__, "complaint_id": str(other_id)}), REGISTRY
    )
    assert first == again == renamed


@st.composite
def integritas_about_a_unit(draw):
    unit = draw(st.sampled_from(NON_DESK))
    if unit.type == "kua":
        place = kecamatan()[unit.kecamatan_code].name
        mention = draw(st.sampled_from([f"KUA {place}", f"KUA Kecamatan {place}", unit.name]))
    else:
        mention = draw(st.sampled_from([unit.name, *unit.aliases]))
    parts = [mention, draw(st.sampled_from(INTEGRITY_PHRASES))]
    parts = draw(st.permutations(parts))
    noise = draw(st.lists(st.sampled_from(VOCABULARY) | st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N"]), max_size=8), max_size=6))
    at = draw(st.integers(0, len(noise)))
    text = " ".join([*noise[:at], parts[0], *noise[at:], parts[1]])
    facts = ComplaintFacts(
        complaint_id=str(uuid.uuid4()),
        category=draw(categories),
        description=text,
        kecamatan_code=draw(st.none() | st.just(unit.kecamatan_code)),
        unit_hint=draw(st.none() | st.just(unit.code)),
        unit_hint_trusted=draw(st.booleans()),
    )
    return unit, facts


@FAST
@given(integritas_about_a_unit(), st.sampled_from(["off", "shadow", "pilot", "live"]))
def test_a_unit_named_in_an_integritas_complaint_is_never_its_target(case, stage):
    unit, facts = case
    registry = REGISTRY.with_stage(unit.code, stage)
    assert integrity_terms(facts.description), facts.description
    decision = decide(facts, registry)
    assert (decision.unit_code, decision.rule) == (DESK, "integritas")
    assert decision.shadow_copy_unit_code is None  # not even a read-only copy
    reason = decision.reason.lower()
    for name in (unit.name, *unit.aliases):
        assert name.lower() not in reason  # staff-facing reasons never name the reported unit


# --- text normalization --------------------------------------------------------------------------

TOKEN = re.compile(r"^[a-z0-9]+$")
CANONICAL_TERMS = {
    "pungli", "suap", "gratifikasi", "uang pelicin", "pemerasan", "calo", "korupsi",
    "pungutan liar", "uang rokok", "minta uang",
}


@FAST
@given(descriptions)
@example("M.Ts.N 02 Kepahiang!!")
@example("\u0130\u0131\u1e9e\ufb01 " * 20)  # letters whose case or compatibility form changes
def test_tokens_are_lowercase_ascii_words_and_text_helpers_never_fail(text):
    words = tokens(text)
    assert all(TOKEN.match(w) for w in words), words
    assert normalize(text) == " ".join(words)
    assert set(integrity_terms(text)) <= CANONICAL_TERMS
    area = find_area_in_text(text)
    if area is not None:
        assert area.kecamatan_code in kecamatan()
        assert area.desa_code is None or villages()[area.desa_code].kecamatan_code == (
            area.kecamatan_code
        )


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("Madrasah Tsanawiyah N 2 Kepahiang", "MTsN 2 Kepahiang"),
        ("Madrasah Aliyah N 1", "MAN 1"),
        ("Madrasah Ibtidaiyah N 7", "MIN 7"),
    ],
)
def test_a_spelled_out_madrasah_type_with_n_reads_like_its_abbreviation(written, canonical):
    # "MTs N" and "Madrasah Tsanawiyah Negeri" both read as "mtsn"; so must their mix, or
    # "Madrasah Tsanawiyah N 2" never finds MTsN 2 (normalizing the result again does find it).
    assert tokens(written) == tokens(canonical)

