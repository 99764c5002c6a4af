"""Validation of ``POST /api/v1/complaints`` bodies.

Call :func:`validate_submission`; it returns the clean complaint or raises
:class:`SubmissionInvalid` whose ``errors`` is a list of dicts such as::

    {"field": "description", "code": "too_short",
     "message": "Uraian pengaduan minimal 10 karakter."}

``field`` is a dotted path such as ``"complainant.phone"``, or None for the body as a whole.

Every message marshmallow can produce here is replaced by an Indonesian one that carries a machine
code (see :class:`_Coded`); an error without a code would be a bug, and is reported as
``invalid`` / "Isian tidak valid." rather than leaking marshmallow's English text.

Decisions:

- Blank strings and ``null`` count as "not filled in" (HTML forms send empty selects and inputs):
  optional fields become None, defaulted fields take their default, required ones are "required".
- ``kecamatan_code`` and ``desa_code`` take Kemendagri codes only (``17.08.06``,
  ``17.08.06.2001``); names are for the form to resolve. A desa alone implies its kecamatan; a desa
  outside the given kecamatan is rejected.
- Anonymous complaints keep no personal data at all: the ``complainant`` block is dropped *before*
  validation (its content is neither checked nor kept) and ``personal_data_dropped`` tells the API
  to say "data diri tidak disimpan" (:data:`ANONYMOUS_NOTICE`). Such a complaint has no contact
  channel, so it gets no notifications; the tracking code is the only way to follow it.
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from services.intake.domain.phone import InvalidPhoneNumber, normalize_phone
from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY
from shared.wilayah import kecamatan, villages

DESCRIPTION_MIN = 10
DESCRIPTION_MAX = 4000
NAME_MAX = 120
EMAIL_MAX = 254
UNIT_CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # same as shared.contracts.events

# Machine codes an error in SubmissionInvalid.errors can carry (stable API: clients branch on them).
# "invalid" ("Isian tidak valid.") is the fallback for an uncoded message and means a bug here.
ERROR_CODES: frozenset[str] = frozenset(
    {
        "required",
        "invalid_type",
        "invalid_choice",
        "too_short",
        "too_long",
        "invalid_format",
        "unknown_kecamatan",
        "unknown_desa",
        "desa_not_in_kecamatan",
        "invalid_phone",
        "invalid_email",
        "unknown_field",
    }
)

ANONYMOUS_NOTICE = (
    "Pengaduan anonim: data diri Anda tidak disimpan, sehingga Anda tidak akan menerima "
    "pemberitahuan. Simpan kode pelacakan untuk memantau perkembangan pengaduan Anda."
)


class _Coded(str):
    """An Indonesian error message that remembers its machine code.

    marshmallow only carries message strings; a ``str`` subclass survives its error plumbing
    untouched, and ``format`` (which marshmallow calls on messages) keeps the code.
    """

    code: str

    def __new__(cls, code: str, text: str) -> "_Coded":
        message = super().__new__(cls, text)
        message.code = code
        return message

    def format(self, *args: Any, **kwargs: Any) -> "_Coded":
        return _Coded(self.code, str.format(self, *args, **kwargs))


def _text_messages(label: str) -> dict[str, _Coded]:
    """Messages for every built-in error of a String field called ``label`` in Indonesian."""
    return {
        "required": _Coded("required", f"{label} wajib diisi."),
        "null": _Coded("required", f"{label} wajib diisi."),
        "invalid": _Coded("invalid_type", f"{label} harus berupa teks."),
        "invalid_utf8": _Coded("invalid_type", f"{label} harus berupa teks UTF-8 yang sah."),
        "validator_failed": _Coded("invalid", f"{label} tidak valid."),
    }


def _choices_text(choices: dict[str, str]) -> str:
    return ", ".join(f"{code} ({name})" for code, name in choices.items())


class SubmissionInvalid(ValueError):
    """The submission cannot be accepted; ``errors`` lists every problem found."""

    code = "invalid_submission"
    message = "Data pengaduan tidak valid. Periksa kembali isian yang ditandai."

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(self.message)
        self.errors = errors


class _InTable(validate.Validator):
    """The value must be a key of ``table()`` (read at call time: the area files load lazily)."""

    def __init__(self, table: Callable[[], Mapping[str, object]], error: _Coded):
        self.table = table
        self.error = error

    def __call__(self, value: str) -> str:
        if value not in self.table():
            raise ValidationError(self.error)
        return value


class _Phone(fields.String):
    default_error_messages = _text_messages("Nomor telepon")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_phone(text)
        except InvalidPhoneNumber as error:
            raise ValidationError(_Coded("invalid_phone", error.message)) from error


class _Email(fields.Email):
    default_error_messages = {
        **_text_messages("Alamat e-mail"),
        "invalid": _Coded(
            "invalid_email", "Alamat e-mail tidak valid, contoh yang benar: nama@contoh.id."
        ),
    }


class _StrictSchema(Schema):
    class Meta:
        unknown = RAISE

    error_messages = {
        "unknown": _Coded("unknown_field", "Isian tidak dikenal."),
        "type": _Coded("invalid_type", "Data harus berupa objek JSON."),
    }

    @pre_load
    def _blank_means_absent(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # reported as invalid_type by marshmallow
        cleaned = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = storable_text(value).strip()
            if value is None or value == "":
                continue
            cleaned[key] = value
        return cleaned


def storable_text(text: str) -> str:
    """Text PostgreSQL can store: NUL characters dropped, lone surrogates (possible in JSON's
    \\ud800 escapes) replaced by '?'. Neither can be shown to a person anyway."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class ComplainantSchema(_StrictSchema):
    """Who complains; every field optional. Never used for anonymous complaints."""

    error_messages = {
        **_StrictSchema.error_messages,
        "type": _Coded("invalid_type", "Data pelapor harus berupa objek JSON."),
    }

    name = fields.String(
        load_default=None,
        error_messages=_text_messages("Nama"),
        validate=validate.Length(
            max=NAME_MAX,
            error=_Coded("too_long", f"Nama maksimal {NAME_MAX} karakter."),
        ),
    )
    phone = _Phone(load_default=None)
    email = _Email(
        load_default=None,
        validate=validate.Length(
            max=EMAIL_MAX,
            error=_Coded("too_long", f"Alamat e-mail maksimal {EMAIL_MAX} karakter."),
        ),
    )


class ComplaintSubmissionSchema(_StrictSchema):
    """The JSON body of ``POST /api/v1/complaints``."""

    error_messages = {
        **_StrictSchema.error_messages,
        "type": _Coded("invalid_type", "Data pengaduan harus berupa objek JSON."),
    }

    channel = fields.String(
        load_default="web",
        error_messages=_text_messages("Kanal pengaduan"),
        validate=validate.OneOf(
            tuple(CHANNELS),
            error=_Coded(
                "invalid_choice",
                f"Kanal pengaduan tidak dikenal. Pilihan: {_choices_text(CHANNELS)}.",
            ),
        ),
    )
    category = fields.String(
        required=True,
        error_messages=_text_messages("Kategori pengaduan"),
        validate=validate.OneOf(
            CATEGORY_CODES,
            error=_Coded(
                "invalid_choice",
                "Kategori pengaduan tidak dikenal. Pilihan: " + ", ".join(CATEGORY_CODES) + ".",
            ),
        ),
    )
    description = fields.String(
        required=True,
        error_messages=_text_messages("Uraian pengaduan"),
        validate=[
            validate.Length(
                min=DESCRIPTION_MIN,
                error=_Coded("too_short", f"Uraian pengaduan minimal {DESCRIPTION_MIN} karakter."),
            ),
            validate.Length(
                max=DESCRIPTION_MAX,
                error=_Coded("too_long", "Uraian pengaduan maksimal 4.000 karakter."),
            ),
        ],
    )
    kecamatan_code = fields.String(
        load_default=None,
        error_messages=_text_messages("Kode kecamatan"),
        validate=_InTable(
            kecamatan,
            _Coded(
                "unknown_kecamatan",
                "Kode kecamatan tidak dikenal; gunakan kode Kemendagri kecamatan di "
                "Kabupaten Kepahiang, misalnya 17.08.04.",
            ),
        ),
    )
    desa_code = fields.String(
        load_default=None,
        error_messages=_text_messages("Kode desa/kelurahan"),
        validate=_InTable(
            villages,
            _Coded(
                "unknown_desa",
                "Kode desa/kelurahan tidak dikenal; gunakan kode Kemendagri desa atau "
                "kelurahan di Kabupaten Kepahiang, misalnya 17.08.01.2001.",
            ),
        ),
    )
    unit_code = fields.String(
        load_default=None,
        error_messages=_text_messages("Kode unit"),
        validate=validate.Regexp(
            UNIT_CODE_PATTERN,
            error=_Coded(
                "invalid_format",
                "Kode unit hanya boleh berisi huruf kecil, angka, tanda hubung, dan garis "
                "bawah (maksimal 64 karakter), misalnya kua-kepahiang.",
            ),
        ),
    )
    confidentiality = fields.String(
        load_default="public",
        error_messages=_text_messages("Tingkat kerahasiaan"),
        validate=validate.OneOf(
            tuple(CONFIDENTIALITY),
            error=_Coded(
                "invalid_choice",
                f"Tingkat kerahasiaan tidak dikenal. Pilihan: {_choices_text(CONFIDENTIALITY)}.",
            ),
        ),
    )
    complainant = fields.Nested(
        ComplainantSchema,
        load_default=None,
        error_messages={
            **_text_messages("Data pelapor"),
            "type": _Coded("invalid_type", "Data pelapor harus berupa objek JSON."),
        },
    )

    @validates_schema(skip_on_field_errors=False)
    def _desa_inside_kecamatan(self, data: dict, **kwargs: Any) -> None:
        desa_code, kecamatan_code = data.get("desa_code"), data.get("kecamatan_code")
        if not desa_code or not kecamatan_code:
            return
        desa = villages()[desa_code]
        if desa.kecamatan_code != kecamatan_code:
            raise ValidationError(
                _Coded(
                    "desa_not_in_kecamatan",
                    f"{_village_label(desa.level)} {desa.name} tidak berada di Kecamatan "
                    f"{kecamatan()[kecamatan_code].name}.",
                ),
                field_name="desa_code",
            )

    @post_load
    def _finish(self, data: dict, **kwargs: Any) -> dict:
        if data["desa_code"] and not data["kecamatan_code"]:
            data["kecamatan_code"] = villages()[data["desa_code"]].kecamatan_code
        complainant = data["complainant"]
        if data["confidentiality"] == "anonymous" or not (
            complainant and any(complainant.values())
        ):
            # Anonymous: normally removed before loading already (validate_submission);
            # this keeps the schema safe when used on its own.
            data["complainant"] = None
        return data


def _village_label(level: str) -> str:
    return "Kelurahan" if level == "kelurahan" else "Desa"


_SCHEMA = ComplaintSubmissionSchema()


# --- Fast path -------------------------------------------------------------------------------
# marshmallow's load machinery costs ~0.1 ms per submission. For a well-formed body the same
# result is built here from the schema's own parts: its hooks (_blank_means_absent,
# _desa_inside_kecamatan, _finish) and every field's own validators, called directly. Anything
# unusual (a type other than str / dict, an unknown or missing required key, a value a
# validator or normalize_phone refuses, a desa outside its kecamatan) gives up with _BAIL and
# validate_submission runs marshmallow, which produces the result or its exact errors. The fast
# path therefore never decides a refusal or writes a message itself. A declaration it does not
# understand (another field type, hook, data_key...) leaves it off entirely (_fast_load None).
# tests/unit/intake/test_intake_validation_fastpath.py compares both over generated valid and
# damaged submissions.

_BAIL = object()


class _Unsupported(Exception):
    pass


_KNOWN_HOOKS = {
    ComplaintSubmissionSchema: {
        "pre_load": ["_blank_means_absent"],
        "validates_schema": ["_desa_inside_kecamatan"],
        "post_load": ["_finish"],
    },
    ComplainantSchema: {"pre_load": ["_blank_means_absent"]},
}


def _field_plan(schema: Schema) -> tuple[dict[str, tuple], tuple[tuple[str, Any, bool], ...]]:
    """(name -> (kind, validators, nested plan), ((name, load_default, required), ...))."""
    hooks = {tag: [h[0] for h in found] for tag, found in type(schema)._hooks.items() if found}
    if hooks != _KNOWN_HOOKS.get(type(schema)):
        raise _Unsupported(f"hooks of {type(schema).__name__}: {hooks}")
    if schema.unknown != RAISE or schema.partial or schema.only or schema.exclude:
        raise _Unsupported("schema options")
    plan, order = {}, []
    for name, field in schema.load_fields.items():
        if (field.data_key is not None or field.attribute is not None or field.pre_load
                or field.post_load or callable(field.load_default)):
            raise _Unsupported(f"{name}: field options")
        kind, nested = type(field), None
        if kind is fields.Nested:
            if field.unknown is not None or field.many or field.only or field.exclude:
                raise _Unsupported(f"{name}: nested options")
            nested = (field.schema, *_field_plan(field.schema))
        elif kind not in (fields.String, _Email, _Phone):
            raise _Unsupported(f"{name}: {kind.__name__}")
        plan[name] = (kind, tuple(field.validators), nested)
        order.append((name, field.load_default, field.required))
    return plan, tuple(order)


def _load_fast(schema: Schema, plan: dict, order: tuple, payload: object) -> Any:
    """What ``schema.load(payload)`` returns, or _BAIL (then marshmallow decides)."""
    if type(payload) is not dict:
        return _BAIL
    data = schema._blank_means_absent(payload)
    out = {}
    for name, value in data.items():
        entry = plan.get(name)
        if entry is None:
            return _BAIL  # unknown field (or a key that is not a str)
        kind, validators, nested = entry
        if nested is not None:
            value = _load_fast(*nested, value)
            if value is _BAIL:
                return _BAIL
        elif type(value) is not str:
            return _BAIL
        elif kind is _Phone:
            try:
                value = normalize_phone(value)
            except InvalidPhoneNumber:
                return _BAIL
        try:
            for check in validators:
                check(value)
        except ValidationError:
            return _BAIL
        out[name] = value
    clean = {}
    for name, default, required in order:  # marshmallow's order: the declaration's
        if name in out:
            clean[name] = out[name]
        elif required:
            return _BAIL
        else:
            clean[name] = default
    if hasattr(schema, "_desa_inside_kecamatan"):
        try:
            schema._desa_inside_kecamatan(clean)
        except ValidationError:
            return _BAIL
    if hasattr(schema, "_finish"):
        clean = schema._finish(clean)
    return clean


def _compile_fast_load() -> Callable[[object], Any] | None:
    try:
        plan, order = _field_plan(_SCHEMA)
    except _Unsupported:
        return None
    return lambda payload: _load_fast(_SCHEMA, plan, order, payload)


_fast_load = _compile_fast_load()


def validate_submission(payload: object) -> dict[str, Any]:
    """The clean complaint from a request body, or :class:`SubmissionInvalid`.

    Result keys: ``channel``, ``category``, ``description``, ``kecamatan_code``, ``desa_code``,
    ``unit_code``, ``confidentiality``, ``complainant`` (``{"name", "phone", "email"}`` with
    None for what was not given, or None when there is no personal data) and
    ``personal_data_dropped`` (True when an anonymous submission came with personal data that
    was thrown away: show :data:`ANONYMOUS_NOTICE`).
    """
    dropped = False
    if isinstance(payload, Mapping) and _is_anonymous(payload.get("confidentiality")):
        payload = dict(payload)
        dropped = _has_content(payload.pop("complainant", None))
    clean = _fast_load(payload) if _fast_load is not None else _BAIL
    if clean is _BAIL:
        try:
            clean = _SCHEMA.load(payload)
        except ValidationError as error:
            raise SubmissionInvalid(list(_flatten(error.messages))) from None
    clean["personal_data_dropped"] = dropped
    return clean


def contact_channels(clean: Mapping[str, Any]) -> list[str]:
    """Kinds of contact a clean submission allows, in ``shared.catalogue.CONTACT_KINDS`` order.

    WhatsApp is offered only when the complaint itself came through WhatsApp (the person is
    known to use it there) and a phone number exists.
    """
    complainant = clean.get("complainant") or {}
    kinds = []
    if complainant.get("email"):
        kinds.append("email")
    if complainant.get("phone"):
        kinds.append("phone")
        if clean.get("channel") == "whatsapp":
            kinds.append("whatsapp")
    return kinds


def _is_anonymous(value: object) -> bool:
    return isinstance(value, str) and value.strip() == "anonymous"


def _has_content(value: object) -> bool:
    if isinstance(value, Mapping):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None


_FALLBACK = _Coded("invalid", "Isian tidak valid.")


def _flatten(messages: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, path if key == "_schema" else (*path, str(key)))
        return
    if isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, path)
        return
    message = messages if isinstance(messages, _Coded) else _FALLBACK
    field = ".".join(path) or None
    text = str(message)
    if message.code == "unknown_field":
        text = f'Isian "{field}" tidak dikenal.'
    yield {"field": field, "code": message.code, "message": text}
