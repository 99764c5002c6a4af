"""Indonesian phone numbers to E.164 (``+62...``), with a small rule set instead of a library.

Accepted shapes (separators: spaces, dashes, dots, slashes, parentheses):

- ``+62 812-3456-7890``, ``0062 812 3456 7890``, ``62812...``: with the country code; a stray
  trunk zero after it (``+62 0812...``, ``+62 (0)812...``) is tolerated.
- ``0812-3456-7890``, ``(0732) 391234``: with the national trunk prefix ``0``.
- ``812...``, ``732...``: without any prefix (web forms that show a fixed ``+62`` in front).

National numbers (after ``62``):

- mobile: ``8`` then 8 to 11 more digits (9 to 12 digits in all), e.g. ``+6281234567890``;
- landline: an area code starting with 2-7 or 9, 8 to 11 digits in all, e.g. Kepahiang's
  ``(0732) 391234`` -> ``+62732391234``.

Digits that start with ``62`` are always read as the country code, never as an area code 062x
(that is what "62812..." means far more often). A short number without area code is rejected
with a hint to add ``(0732)`` rather than guessed to be local: a wrong guess would send a
complainant's messages to a stranger. Foreign numbers are rejected: contacts must be reachable
through the Indonesian SMS/WhatsApp providers.
"""

import re

MOBILE_LENGTHS = range(9, 13)
LANDLINE_LENGTHS = range(8, 12)
MAX_INPUT_LENGTH = 32

_ALLOWED = re.compile(r"\+?[0-9\s\-.()/]+")
_NON_DIGITS = re.compile(r"\D")


class InvalidPhoneNumber(ValueError):
    """The input is not an Indonesian phone number; ``message`` is for the person who typed it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _drop_trunk_zero(national: str) -> str:
    # "+62 (0)812...": people often keep the trunk zero after the country code.
    return national[1:] if national.startswith("0") else national


def normalize_phone(raw: object) -> str:
    """E.164 form of an Indonesian mobile or landline number, e.g. ``"+6281234567890"``.

    Raises :class:`InvalidPhoneNumber` with an Indonesian message for anything else.
    """
    if not isinstance(raw, str):
        raise InvalidPhoneNumber("invalid_type", "Nomor telepon harus berupa teks.")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("empty", "Nomor telepon kosong.")
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber("too_long", "Nomor telepon terlalu panjang.")
    if not _ALLOWED.fullmatch(text):
        raise InvalidPhoneNumber(
            "invalid_characters",
            "Nomor telepon hanya boleh berisi angka, spasi, tanda hubung, titik, tanda kurung, "
            "dan tanda + di depan.",
        )

    digits = _NON_DIGITS.sub("", text)
    has_prefix = True
    if text.startswith("+") or digits.startswith("00"):
        international = digits[2:] if digits.startswith("00") else digits
        if not international.startswith("62"):
            raise InvalidPhoneNumber(
                "not_indonesian", "Hanya nomor telepon Indonesia (+62) yang dapat diterima."
            )
        national = _drop_trunk_zero(international[2:])
    elif digits.startswith("62"):
        national = _drop_trunk_zero(digits[2:])
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
        has_prefix = False

    if national.startswith("8"):
        if len(national) not in MOBILE_LENGTHS:
            raise InvalidPhoneNumber(
                "invalid_mobile",
                "Nomor ponsel harus 10 sampai 13 angka dan diawali 08, misalnya 0812-3456-7890.",
            )
        return "+62" + national
    if national[:1] in ("2", "3", "4", "5", "6", "7", "9"):
        if len(national) in LANDLINE_LENGTHS:
            return "+62" + national
        if not has_prefix and len(national) < LANDLINE_LENGTHS.start:
            raise InvalidPhoneNumber(
                "missing_area_code",
                "Nomor telepon rumah atau kantor harus diawali kode area, misalnya (0732) 391234.",
            )
        raise InvalidPhoneNumber(
            "invalid_landline",
            "Nomor telepon rumah atau kantor harus 9 sampai 12 angka termasuk kode area, "
            "misalnya (0732) 391234.",
        )
    raise InvalidPhoneNumber(
        "invalid_number",
        "Nomor telepon tidak dikenali. Tulis nomor ponsel seperti 0812-3456-7890 "
        "atau nomor kantor seperti (0732) 391234.",
    )


def is_mobile(e164: str) -> bool:
    """Whether a normalized number is a mobile number (can receive SMS and WhatsApp)."""
    return e164.startswith("+628")
