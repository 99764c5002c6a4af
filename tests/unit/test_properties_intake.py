"""Property-based tests (hypothesis) of intake's parsers and validators: tracking codes, phone
numbers and complaint submissions, on arbitrary input."""

import re
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.intake.domain.phone import InvalidPhoneNumber, normalize_phone
from services.intake.domain.tracking import (
    ALPHABET,
    PREFIX,
    new_tracking_code,
    normalize_tracking_code,
)
from services.intake.domain.validation import (
    ERROR_CODES,
    SubmissionInvalid,
    validate_submission,
)
from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY
from shared.wilayah import kecamatan, villages

# database=None: no .hypothesis/ directory in the tree; a failure prints its example anyway.
FAST = settings(max_examples=200, deadline=None, database=None)

CODE_SHAPE = re.compile(r"^DMS-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$")
E164_ID = re.compile(r"^\+62\d{8,13}$")
PHONE_ERROR_CODES = {
    "invalid_type", "empty", "too_long", "invalid_characters", "not_indonesian",
    "invalid_mobile", "missing_area_code", "invalid_landline", "invalid_number",
}

# Anything a JSON body can hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


# --- tracking codes ----------------------------------------------------------------------------

# A strategy over fresh codes: hypothesis drives the index, secrets draws the code.
fresh_codes = st.integers(0, 10).map(lambda _: new_tracking_code())
separators = st.sampled_from([" ", "-", "", ".", "_", "\u2013", "\u2212", "  ", "\t"])


@FAST
@given(fresh_codes)
def test_a_fresh_code_is_canonical_and_round_trips(code):
    assert CODE_SHAPE.match(code)
    assert normalize_tracking_code(code) == code
    assert normalize_tracking_code(code.lower()) == code


@FAST
@given(fresh_codes, separators, st.booleans(), st.booleans())
def test_presentation_of_a_code_never_matters(code, sep, keep_prefix, lower):
    groups = code.split("-")[1:]
    typed = sep.join(([PREFIX] if keep_prefix else []) + groups)
    typed = f"  {typed.lower() if lower else typed} "
    assert normalize_tracking_code(typed) == code


@FAST
@given(fresh_codes, st.integers(0, 11), st.sampled_from(ALPHABET))
def test_every_single_mistyped_symbol_is_rejected(code, position, symbol):
    body = code.replace("-", "")[len(PREFIX):]
    if body[position] == symbol:
        symbol = ALPHABET[(ALPHABET.index(symbol) + 1) % len(ALPHABET)]
    typo = body[:position] + symbol + body[position + 1:]
    assert normalize_tracking_code(typo) is None


@FAST
@given(st.one_of(st.text(), st.text(alphabet=ALPHABET + "dms-_. 0O1IL", max_size=30), json_values))
@example("DMS-" + "2" * 12)
@example("x" * 10_000)
def test_any_input_gives_none_or_a_canonical_code_and_normalizing_is_idempotent(value):
    result = normalize_tracking_code(value)
    assert result is None or CODE_SHAPE.match(result)
    if result is not None:
        assert normalize_tracking_code(result) == result


# --- phone numbers -----------------------------------------------------------------------------

phone_like = st.text(alphabet="+0123456789 -.()/", max_size=40)
digits = st.text(alphabet=string.digits, min_size=1, max_size=14)


def _phone_outcome(raw):
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber as error:
        assert error.code in PHONE_ERROR_CODES
        assert error.message and error.message == str(error)
        return None


@FAST
@given(st.one_of(st.text(), phone_like, digits, json_values))
@example("+62 0812 3456 7890")
@example("0062(0)8123456789")
@example("+" * 32)
@example("٠٨١٢٣٤٥٦٧٨٩٠")  # Arabic-Indic digits: \d would match them, the rule must not
def test_any_input_is_an_indonesian_e164_number_or_a_documented_refusal(raw):
    result = _phone_outcome(raw)
    if result is not None:
        assert E164_ID.match(result), result
        assert result.isascii()
        assert normalize_phone(result) == result  # E.164 is a fixed point


@FAST
@given(
    st.text(alphabet=string.digits, min_size=8, max_size=11),
    st.sampled_from(["0{n}", "+62{n}", "62{n}", "0062{n}", "+62 (0){n}", "{n}"]),
    st.sampled_from(["", " ", "-", "."]),
)
def test_every_way_of_writing_a_mobile_number_gives_the_same_e164(rest, shape, sep):
    national = "8" + rest
    grouped = sep.join(national[i:i + 4] for i in range(0, len(national), 4))
    assert normalize_phone(shape.format(n=grouped)) == "+62" + national


@FAST
@given(st.integers(0, 10**14).map(str), st.sampled_from(["+1", "+44", "+60", "001", "+65 "]))
def test_foreign_numbers_are_always_refused(number, country):
    try:
        normalize_phone(country + number)
    except InvalidPhoneNumber as error:
        assert error.code in PHONE_ERROR_CODES
    else:
        raise AssertionError(f"accepted a foreign number {country + number!r}")


# --- complaint submissions ---------------------------------------------------------------------

SUBMISSION_FIELDS = [
    "channel", "category", "description", "kecamatan_code", "desa_code", "unit_code",
    "confidentiality", "complainant",
]
KECAMATAN = sorted(kecamatan())
DESA = sorted(villages())
plausible = {
    "channel": st.sampled_from(sorted(CHANNELS)) | json_values,
    "category": st.sampled_from(CATEGORY_CODES) | json_values,
    "description": st.text(min_size=0, max_size=120) | json_values,
    "kecamatan_code": st.sampled_from(KECAMATAN) | json_values,
    "desa_code": st.sampled_from(DESA) | json_values,
    "unit_code": st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True) | json_values,
    "confidentiality": st.sampled_from(sorted(CONFIDENTIALITY)) | json_values,
    "complainant": st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=30) | json_values,
            "phone": phone_like | json_values,
            "email": st.emails() | st.text(max_size=30) | json_values,
        },
    )
    | json_values,
}
near_valid = st.fixed_dictionaries({}, optional=plausible).flatmap(
    lambda body: st.dictionaries(st.text(max_size=8), json_values, max_size=2).map(
        lambda extra: {**extra, **body}
    )
    | st.just(body)
)


def _check_outcome(payload):
    try:
        clean = validate_submission(payload)
    except SubmissionInvalid as invalid:
        assert invalid.errors, "an invalid submission must say what is wrong"
        for error in invalid.errors:
            assert set(error) == {"field", "code", "message"}
            # "invalid" is the uncoded fallback: seeing it means a message lost its machine code.
            assert error["code"] in ERROR_CODES, error
            assert isinstance(error["message"], str) and error["message"]
            assert error["field"] is None or isinstance(error["field"], str)
        return None
    return clean


@FAST
@given(json_values)
@example([])
@example("a string body")
@example({"complainant": []})
def test_any_json_body_is_accepted_or_refused_with_coded_errors(payload):
    _check_outcome(payload)


@FAST
@given(near_valid)
def test_near_valid_bodies_are_accepted_clean_or_refused_with_coded_errors(payload):
    clean = _check_outcome(payload)
    if clean is None:
        return
    assert clean["category"] in CATEGORY_CODES
    assert clean["channel"] in CHANNELS
    assert clean["confidentiality"] in CONFIDENTIALITY
    assert 10 <= len(clean["description"]) <= 4000
    assert clean["kecamatan_code"] is None or clean["kecamatan_code"] in kecamatan()
    complainant = clean["complainant"]
    if clean["confidentiality"] == "anonymous":
        assert complainant is None  # anonymous keeps no personal data, whatever was sent
    if complainant is not None:
        assert complainant["phone"] is None or E164_ID.match(complainant["phone"])
