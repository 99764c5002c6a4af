"""The fast path of validate_submission gives exactly what marshmallow gives.

Over generated valid and damaged submissions, `validate_submission` with its fast path and with
the fast path switched off (plain marshmallow, the code before it) must return the same clean
complaint (same keys in the same order, same values and types) or raise SubmissionInvalid with
the same errors (field, machine code, Indonesian message, in the same order).
"""

import random

import pytest
from marshmallow import fields

from services.intake.domain import validation
from services.intake.domain.validation import SubmissionInvalid, validate_submission
from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY
from shared.wilayah import kecamatan, villages

MISSING = object()

DESCRIPTIONS = [
    "Pendaftaran nikah di KUA ditolak tanpa alasan yang jelas.",
    "  Pelayanan haji lambat sekali.  ",
    "a" * 10, "a" * 9, "a" * 4000, "a" * 4001, "   " + "b" * 9 + "   ",
    "Uraian\x00 dengan NUL dan é ü", "Uraian \ud800 surogat tunggal", "", "   ", "pendek",
    "\n\tUraian dengan spasi di tepi yang cukup panjang\n",
]
PHONES = [
    "0812-3456-7890", "+62 812 3456 7890", "(0732) 391234", "081234", "+1 202 555 0100",
    "0812 abc", " 081234567890 ", "", "8123456789", "0" * 40,
]
EMAILS = [
    "siti@contoh.id", " siti@contoh.id ", "siti@", "bukan email", "a@b", "x" * 250 + "@c.id",
    "Siti.Aminah+kua@Contoh.ID", "",
]
NAMES = ["Siti Aminah", "  Budi  ", "x" * 120, "x" * 121, "", "Nama\x00NUL"]
ODD = [None, 0, 1, 1.5, True, [], ["web"], {}, {"a": 1}, b"web", "   "]


def _kecamatan_codes():
    return list(kecamatan())


def _village_codes():
    return list(villages())


def _text(rng, good, bad):
    roll = rng.random() * (0.9 if rng.tidy else 1.0)  # a tidy body: the good values only
    if roll < 0.75:
        value = rng.choice(good)
        # whitespace around it, as forms send
        return rng.choice(["", " ", "\t"]) + value + rng.choice(["", " ", "\n"])
    if roll < 0.9:
        return rng.choice(bad)
    return rng.choice(ODD)


def _complainant(rng):
    roll = rng.random()
    if roll < 0.08 and not rng.tidy:
        return rng.choice(ODD + ["Siti"])
    body = {}
    for key, pool in (("name", NAMES), ("phone", PHONES), ("email", EMAILS)):
        r = rng.random()
        if r < 0.6:
            body[key] = rng.choice(pool[:3] if rng.tidy else pool)
        elif r < 0.67 and not rng.tidy:
            body[key] = rng.choice(ODD)
    if rng.random() < 0.05:
        body["alamat"] = rng.choice(["Jl. Merdeka 1", "", None])
    return body


def _payload(rng):
    rng.tidy = rng.random() < 0.4
    if rng.random() < 0.02:
        return rng.choice([None, [], "teks", 12, ["category"]])
    kec, vil = _kecamatan_codes(), _village_codes()
    candidates = {
        "channel": lambda: _text(rng, list(CHANNELS), ["sms", "WEB", "email"]),
        "category": lambda: _text(rng, list(CATEGORY_CODES), ["nikah", "Wakaf", "lain"]),
        "description": lambda: rng.choice(DESCRIPTIONS[:3] if rng.tidy else DESCRIPTIONS + ODD[:3]),
        "kecamatan_code": lambda: _text(rng, kec, ["17.08", "Kepahiang", "17.08.99"]),
        "desa_code": lambda: _text(rng, vil, ["17.08.01.9999", "Kota Agung", kec[0]]),
        "unit_code": lambda: _text(
            rng, ["kua-kepahiang", "ptsp", "a", "x" * 64, "kua_bermani-ilir"],
            ["KUA", "-kua", "x" * 65, "kua kepahiang", "kua.kepahiang"],
        ),
        "confidentiality": lambda: _text(rng, list(CONFIDENTIALITY), ["rahasia", "Public"]),
        "complainant": lambda: _complainant(rng),
    }
    body = {}
    for key, make in candidates.items():
        # required fields usually present, optional ones often
        if rng.random() < (0.95 if key in ("category", "description") else 0.55):
            body[key] = make()
    if rng.random() < 0.3 and "desa_code" in body and isinstance(body["desa_code"], str):
        # a desa with its own kecamatan (valid) more often than chance would give
        code = body["desa_code"].strip()
        if code in villages():
            body["kecamatan_code"] = villages()[code].kecamatan_code
    if rng.random() < 0.04 and not rng.tidy:
        body[rng.choice(["judul", "Category", 7, "lampiran"])] = rng.choice(["x", "", None, 3])
    if rng.random() < 0.1:
        keys = list(body)
        rng.shuffle(keys)
        body = {key: body[key] for key in keys}
    return body


def _outcome(payload):
    try:
        clean = validate_submission(payload)
    except SubmissionInvalid as error:
        return ("invalid", error.errors)
    return ("ok", _ordered(clean))


def _ordered(value):
    """The value with every dict as its list of items, so that key order is compared too."""
    if isinstance(value, dict):
        return [(key, _ordered(item)) for key, item in value.items()]
    return (type(value).__name__, value)


def _marshmallow_only(monkeypatch, payload):
    with monkeypatch.context() as patch:
        patch.setattr(validation, "_fast_load", None)
        return _outcome(payload)


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_and_marshmallow_agree_on_generated_submissions(monkeypatch, seed):
    assert validation._fast_load is not None  # the shipped schemas are understood
    rng = random.Random(seed)
    handled = accepted = refused = 0
    for _ in range(1500):
        payload = _payload(rng)
        snapshot = repr(payload)
        fast = validation._fast_load(payload)
        assert repr(payload) == snapshot  # the fast path does not touch its input
        new = _outcome(payload)
        old = _marshmallow_only(monkeypatch, payload)
        assert new == old, payload
        if fast is not validation._BAIL:
            handled += 1
            assert ("ok", _ordered({**fast, "personal_data_dropped": False})) == old or (
                isinstance(payload, dict)
                and validation._is_anonymous(payload.get("confidentiality"))
            )
        accepted += new[0] == "ok"
        refused += new[0] == "invalid"
    # The generator reaches both outcomes and the fast path takes a real share of the valid ones.
    assert accepted > 150 and refused > 150, (accepted, refused)
    assert handled > 0.5 * accepted, (handled, accepted)


def test_the_fast_path_takes_a_typical_web_submission():
    body = {
        "category": "nikah_rujuk", "kecamatan_code": "17.08.01", "desa_code": "17.08.01.2001",
        "description": "Pendaftaran nikah di KUA ditolak tanpa alasan yang jelas.",
        "complainant": {"name": " Siti ", "phone": "0812-3456-7890", "email": "siti@contoh.id"},
    }
    fast = validation._fast_load(body)
    assert fast is not validation._BAIL
    assert fast == validation._SCHEMA.load(body)
    assert fast["complainant"]["phone"] == "+6281234567890"


def test_a_refusal_is_never_decided_by_the_fast_path():
    for body in ({"category": "nikah_rujuk"}, {"category": "x", "description": "a" * 20},
                 {"category": "wakaf", "description": "a" * 20, "desa_code": "17.08.06.2001",
                  "kecamatan_code": "17.08.01"}):
        assert validation._fast_load(body) is validation._BAIL


def test_a_declaration_it_does_not_understand_leaves_the_fast_path_off():
    class WithNumber(validation.ComplaintSubmissionSchema):
        count = fields.Integer(load_default=None)

    with pytest.raises(validation._Unsupported):
        validation._field_plan(WithNumber())

    class WithHook(validation.ComplaintSubmissionSchema):
        @validation.post_load
        def _extra(self, data, **kwargs):
            return data

    with pytest.raises(validation._Unsupported):
        validation._field_plan(WithHook())
