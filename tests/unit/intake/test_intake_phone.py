import pytest

from services.intake.domain.phone import InvalidPhoneNumber, is_mobile, normalize_phone


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("81234567890", "+6281234567890"),
        ("0062 812 3456 7890", "+6281234567890"),
        ("+62 (0)812-3456-7890", "+6281234567890"),
        ("0812.3456.789", "+628123456789"),
        ("  0852 1234 5678  ", "+6285212345678"),
        ("(0732) 21123", "+6273221123"),
        ("(0732) 391234", "+62732391234"),
        ("0732-391234", "+62732391234"),
        ("+62 732 391234", "+62732391234"),
        ("732391234", "+62732391234"),
        ("(021) 3811642", "+62213811642"),
    ],
)
def test_indonesian_numbers_in_every_common_shape_become_e164(typed, e164):
    assert normalize_phone(typed) == e164


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("nomor saya 0812", "invalid_characters"),
        ("0812-3456-789O", "invalid_characters"),
        ("0812+3456", "invalid_characters"),
        ("+1 555 123 4567", "not_indonesian"),
        ("0060 12 345 6789", "not_indonesian"),
        ("0812", "invalid_mobile"),
        ("0812-3456-7890-1234", "invalid_mobile"),
        ("391234", "missing_area_code"),
        ("0732 21", "invalid_landline"),
        ("0732 1234 5678 90", "invalid_landline"),
        ("112", "invalid_number"),
        ("+62", "invalid_number"),
        ("1" * 40, "too_long"),
        (81234567890, "invalid_type"),
        (None, "invalid_type"),
    ],
)
def test_garbage_is_rejected_with_a_code_and_an_indonesian_message(typed, code):
    with pytest.raises(InvalidPhoneNumber) as raised:
        normalize_phone(typed)
    assert raised.value.code == code
    assert "Nomor" in raised.value.message or "nomor" in raised.value.message
    assert str(raised.value) == raised.value.message


def test_a_short_local_number_gets_a_hint_to_add_the_kepahiang_area_code():
    with pytest.raises(InvalidPhoneNumber) as raised:
        normalize_phone("21123")
    assert "(0732)" in raised.value.message


def test_mobile_numbers_are_told_apart_from_landlines():
    assert is_mobile(normalize_phone("0812-3456-7890"))
    assert not is_mobile(normalize_phone("(0732) 391234"))
