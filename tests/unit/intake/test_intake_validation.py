import pytest

from services.intake.domain.validation import (
    ANONYMOUS_NOTICE,
    ERROR_CODES,
    SubmissionInvalid,
    contact_channels,
    validate_submission,
)

BERMANI_ILIR = "17.08.01"
KOTA_AGUNG = "17.08.01.2001"  # desa in Bermani Ilir
KEBAN_AGUNG = "17.08.01.1007"  # kelurahan in Bermani Ilir
KEBAWETAN = "17.08.06"
BANDUNG_BARU = "17.08.06.2001"  # desa in Kebawetan

# Phrases of marshmallow's built-in English messages; none may reach a person.
ENGLISH = ("Missing data", "Not a valid", "Unknown field", "Must be", "Invalid", "may not be")


def make_payload(**overrides):
    payload = {
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA ditolak tanpa alasan yang jelas.",
    }
    payload.update(overrides)
    return payload


def make_complainant(**overrides):
    complainant = {"name": "Siti Aminah", "phone": "0812-3456-7890", "email": "siti@contoh.id"}
    complainant.update(overrides)
    return complainant


def errors_of(payload):
    with pytest.raises(SubmissionInvalid) as raised:
        validate_submission(payload)
    return raised.value.errors


def codes_by_field(payload):
    return {(e["field"], e["code"]) for e in errors_of(payload)}


def test_a_minimal_submission_gets_web_public_and_empty_optional_fields():
    clean = validate_submission(make_payload())
    assert clean == {
        "channel": "web",
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA ditolak tanpa alasan yang jelas.",
        "kecamatan_code": None,
        "desa_code": None,
        "unit_code": None,
        "confidentiality": "public",
        "complainant": None,
        "personal_data_dropped": False,
    }


def test_a_full_submission_is_kept_with_the_phone_in_e164():
    clean = validate_submission(
        make_payload(
            channel="whatsapp",
            kecamatan_code=BERMANI_ILIR,
            desa_code=KOTA_AGUNG,
            unit_code="kua-bermani-ilir",
            confidentiality="confidential",
            complainant=make_complainant(name="  Siti Aminah "),
        )
    )
    assert clean["complainant"] == {
        "name": "Siti Aminah",
        "phone": "+6281234567890",
        "email": "siti@contoh.id",
    }
    assert clean["unit_code"] == "kua-bermani-ilir"
    assert clean["confidentiality"] == "confidential"


@pytest.mark.parametrize(
    ("length", "code"),
    [(9, "too_short"), (10, None), (4000, None), (4001, "too_long")],
)
def test_description_must_be_10_to_4000_characters(length, code):
    payload = make_payload(description="a" * length)
    if code is None:
        assert validate_submission(payload)["description"] == "a" * length
    else:
        assert codes_by_field(payload) == {("description", code)}


def test_description_length_is_counted_after_stripping_whitespace():
    assert codes_by_field(make_payload(description="   " + "a" * 9 + "\n\n")) == {
        ("description", "too_short")
    }
    clean = validate_submission(make_payload(description="  " + "a" * 10 + "  "))
    assert clean["description"] == "a" * 10


def test_too_short_description_has_the_indonesian_message_from_the_api_contract():
    assert errors_of(make_payload(description="pendek")) == [
        {
            "field": "description",
            "code": "too_short",
            "message": "Uraian pengaduan minimal 10 karakter.",
        }
    ]


def test_category_and_description_are_required():
    payload = make_payload()
    del payload["category"], payload["description"]
    assert codes_by_field(payload) == {("category", "required"), ("description", "required")}


def test_blank_or_null_values_count_as_not_filled_in():
    clean = validate_submission(
        make_payload(channel="", kecamatan_code=" ", desa_code=None, confidentiality=None)
    )
    assert (clean["channel"], clean["kecamatan_code"], clean["desa_code"]) == ("web", None, None)
    assert clean["confidentiality"] == "public"
    assert codes_by_field(make_payload(category="  ")) == {("category", "required")}


def test_an_unknown_top_level_field_is_rejected():
    assert errors_of(make_payload(nik="1708010101010001")) == [
        {"field": "nik", "code": "unknown_field", "message": 'Isian "nik" tidak dikenal.'}
    ]


def test_an_unknown_field_in_the_complainant_is_rejected():
    payload = make_payload(complainant=make_complainant(nik="1708010101010001"))
    assert codes_by_field(payload) == {("complainant.nik", "unknown_field")}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("channel", "telegram", "invalid_choice"),
        ("category", "parkir", "invalid_choice"),
        ("confidentiality", "secret", "invalid_choice"),
        ("unit_code", "KUA Kepahiang", "invalid_format"),
        ("kecamatan_code", "17.08.99", "unknown_kecamatan"),
        ("desa_code", "17.08.01.9999", "unknown_desa"),
    ],
)
def test_values_outside_the_catalogues_are_rejected(field, value, code):
    assert codes_by_field(make_payload(**{field: value})) == {(field, code)}


def test_kecamatan_takes_codes_only_not_names():
    assert codes_by_field(make_payload(kecamatan_code="Kabawetan")) == {
        ("kecamatan_code", "unknown_kecamatan")
    }


def test_a_desa_alone_implies_its_kecamatan():
    clean = validate_submission(make_payload(desa_code=BANDUNG_BARU))
    assert (clean["kecamatan_code"], clean["desa_code"]) == (KEBAWETAN, BANDUNG_BARU)


def test_a_kelurahan_is_accepted_as_desa_code():
    clean = validate_submission(make_payload(desa_code=KEBAN_AGUNG))
    assert clean["kecamatan_code"] == BERMANI_ILIR


def test_a_desa_outside_the_given_kecamatan_is_rejected_by_name():
    errors = errors_of(make_payload(kecamatan_code=KEBAWETAN, desa_code=KOTA_AGUNG))
    assert errors == [
        {
            "field": "desa_code",
            "code": "desa_not_in_kecamatan",
            "message": "Desa Kota Agung tidak berada di Kecamatan Kebawetan.",
        }
    ]


def test_desa_mismatch_is_reported_together_with_other_errors():
    payload = make_payload(kecamatan_code=KEBAWETAN, desa_code=KOTA_AGUNG, description="x")
    assert codes_by_field(payload) == {
        ("description", "too_short"),
        ("desa_code", "desa_not_in_kecamatan"),
    }


def test_complainant_fields_are_checked_one_by_one():
    payload = make_payload(complainant={"name": "n" * 121, "phone": "0812", "email": "siti@"})
    assert codes_by_field(payload) == {
        ("complainant.name", "too_long"),
        ("complainant.phone", "invalid_phone"),
        ("complainant.email", "invalid_email"),
    }


def test_a_name_of_120_characters_is_accepted():
    clean = validate_submission(make_payload(complainant={"name": "n" * 120}))
    assert clean["complainant"] == {"name": "n" * 120, "phone": None, "email": None}


def test_an_empty_complainant_block_means_no_complainant():
    clean = validate_submission(make_payload(complainant={"name": "", "phone": " "}))
    assert clean["complainant"] is None


def test_the_phone_error_explains_what_is_wrong_in_indonesian():
    errors = errors_of(make_payload(complainant={"phone": "21123"}))
    assert errors[0]["field"] == "complainant.phone"
    assert "kode area" in errors[0]["message"]


def test_anonymous_drops_all_personal_data_and_says_so():
    clean = validate_submission(
        make_payload(confidentiality="anonymous", complainant=make_complainant())
    )
    assert clean["complainant"] is None
    assert clean["personal_data_dropped"] is True
    assert "Siti" not in repr(clean)
    assert contact_channels(clean) == []
    assert "tidak disimpan" in ANONYMOUS_NOTICE


def test_anonymous_personal_data_is_dropped_unread_so_it_cannot_fail_the_submission():
    payload = make_payload(
        confidentiality="anonymous", complainant={"phone": "bukan nomor", "nik": "123"}
    )
    assert validate_submission(payload)["complainant"] is None


def test_anonymous_without_personal_data_needs_no_notice():
    clean = validate_submission(make_payload(confidentiality="anonymous"))
    assert clean["personal_data_dropped"] is False


def test_validating_does_not_change_the_callers_payload():
    payload = make_payload(confidentiality="anonymous", complainant=make_complainant())
    validate_submission(payload)
    assert payload["complainant"] == make_complainant()


@pytest.mark.parametrize("body", [None, [], "teks", 42, [make_payload()]])
def test_a_body_that_is_not_an_object_is_rejected_as_a_whole(body):
    assert errors_of(body) == [
        {
            "field": None,
            "code": "invalid_type",
            "message": "Data pengaduan harus berupa objek JSON.",
        }
    ]


BAD_PAYLOADS = [
    {},
    {"category": 1, "description": ["a"], "channel": True, "confidentiality": 0},
    {"kecamatan_code": 17, "desa_code": {}, "unit_code": 3.5},
    make_payload(complainant="Siti"),
    make_payload(complainant=["Siti"]),
    make_payload(complainant={"name": 1, "phone": 812, "email": 5}),
    make_payload(complainant={"name": "n" * 500, "email": "x@" + "a" * 300 + ".id"}),
    make_payload(channel="fax", category="parkir", confidentiality="rahasia", extra=1),
    make_payload(description="a" * 5000, kecamatan_code="x", desa_code="y", unit_code="-"),
    make_payload(kecamatan_code=KEBAWETAN, desa_code=KOTA_AGUNG, complainant={"x": 1}),
    make_payload(complainant={"phone": "+44 20 7946 0000", "email": "siti at contoh.id"}),
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_every_error_has_a_machine_code_and_an_indonesian_message(payload):
    errors = errors_of(payload)
    assert errors
    for error in errors:
        assert set(error) == {"field", "code", "message"}
        assert error["code"] in ERROR_CODES, error
        assert error["message"].endswith("."), error
        assert not any(phrase in error["message"] for phrase in ENGLISH), error


def test_all_problems_are_reported_at_once():
    fields = {e["field"] for e in errors_of(BAD_PAYLOADS[1])}
    assert fields == {"category", "description", "channel", "confidentiality"}


def test_contact_channels_list_the_kinds_of_contact_given():
    clean = validate_submission(make_payload(complainant=make_complainant()))
    assert contact_channels(clean) == ["email", "phone"]


def test_whatsapp_is_a_contact_channel_when_the_complaint_came_by_whatsapp_with_a_phone():
    clean = validate_submission(
        make_payload(channel="whatsapp", complainant={"phone": "0812-3456-7890"})
    )
    assert contact_channels(clean) == ["phone", "whatsapp"]


def test_whatsapp_without_a_phone_gives_no_whatsapp_contact():
    clean = validate_submission(
        make_payload(channel="whatsapp", complainant={"email": "siti@contoh.id"})
    )
    assert contact_channels(clean) == ["email"]


def test_a_complaint_without_complainant_has_no_contact_channels():
    assert contact_channels(validate_submission(make_payload())) == []
