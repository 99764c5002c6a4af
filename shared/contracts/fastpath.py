"""Precompiled fast paths for the marshmallow schemas of the wire contracts.

marshmallow costs ~0.05-0.07 ms of CPU per event to load (and as much again to dump and
validate when building one); every complaint's events are built once and loaded ~7 times
across the services. Each schema's declared fields are compiled once (the envelope's at
import, an event version's on its first use) into plain functions that handle the common,
well-formed case: exact built-in types (str, int, bool, list, dict, an aware ISO datetime, a
canonical UUID), validators re-checked with the validators' own parameters. Anything else (a
missing required field, a None where none is allowed, an unknown key, a failed validator, an
unusual type marshmallow might still coerce) makes the fast path give up by returning BAIL,
and the caller runs plain marshmallow, which accepts, coerces or produces its exact error as
before. The fast path therefore only ever returns what marshmallow would return for the same
input; it never decides a refusal itself.

A schema whose declaration uses anything not understood here (hooks, data_key, attribute,
dump defaults, other field or validator types) gets no fast path at all (compile_* returns
None). tests/unit/test_contract_fastpath.py compares both paths over generated valid and
damaged payloads of every registered (event type, version).
"""

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, missing, validate

BAIL = object()  # "not handled here: ask marshmallow"

Conv = Callable[[Any], Any]  # value -> converted value, or BAIL

# str(uuid.UUID(s)) == s exactly for these (lowercase, hyphenated); uuid.UUID accepts more
# (upper case, braces, urn:uuid:, no hyphens), which marshmallow handles on the slow path.
_canonical_uuid = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch


_fromisoformat = datetime.fromisoformat
_isoformat = datetime.isoformat  # what marshmallow's DateTime "iso" format calls


class Unsupported(Exception):
    """A declaration the compiler does not reproduce exactly: no fast path for that schema."""


def _plain_field(field: fields.Field) -> None:
    if field.data_key is not None or field.attribute is not None:
        raise Unsupported("data_key/attribute")
    if field.pre_load or field.post_load:
        raise Unsupported("field processors")
    if field.dump_default is not missing:
        raise Unsupported("dump_default")
    if field.load_only or field.dump_only:
        raise Unsupported("load_only/dump_only")


def _validator_check(validators: list, kind: str) -> Callable[[Any], bool] | None:
    """One predicate running the field's validators (True: all pass); None if there are none.
    `kind` is the type the value is known to have: "str", "int" or "list"."""
    checks = []
    for v in validators:
        t = type(v)
        if t is validate.Length:
            lo, hi, eq = v.min, v.max, v.equal
            if eq is not None:
                checks.append(lambda x, eq=eq: len(x) == eq)
            else:
                checks.append(lambda x, lo=lo, hi=hi: (lo is None or len(x) >= lo)
                              and (hi is None or len(x) <= hi))
        elif t is validate.Regexp and kind == "str":
            checks.append(lambda x, m=v.regex.match: m(x) is not None)
        elif t is validate.OneOf and kind == "str":
            choices = tuple(v.choices)
            if not all(type(c) is str for c in choices):
                raise Unsupported("OneOf with non-str choices")
            allowed = frozenset(choices)  # same answer as `in tuple` for str values
            checks.append(allowed.__contains__)
        elif t is validate.Range and kind == "int":
            lo, hi, lo_inc, hi_inc = v.min, v.max, v.min_inclusive, v.max_inclusive
            checks.append(lambda x, lo=lo, hi=hi, li=lo_inc, hi_=hi_inc:
                          (lo is None or (x >= lo if li else x > lo))
                          and (hi is None or (x <= hi if hi_ else x < hi)))
        else:
            raise Unsupported(f"validator {t.__name__} on {kind}")
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda x: all(c(x) for c in checks)


def _with_validators(conv: Conv, field: fields.Field, kind: str) -> Conv:
    check = _validator_check(field.validators, kind)
    if check is None:
        return conv

    def checked(value):
        out = conv(value)
        if out is BAIL or not check(out):
            return BAIL
        return out
    return checked


def _load_conv(field: fields.Field, *, top_level: bool) -> Conv:
    """value (present, not None) -> what field.deserialize returns, or BAIL.

    UUIDs: at the top level of event data load_event turns them into str(uuid), so the
    compiled top-level converter returns that string directly."""
    _plain_field(field)
    t = type(field)
    if t is fields.String:
        return _with_validators(lambda v: v if type(v) is str else BAIL, field, "str")
    if t is fields.UUID:
        if field.validators or not top_level:
            raise Unsupported("UUID with validators or nested")

        def conv_uuid(v):
            if type(v) is str:
                return v if _canonical_uuid(v) else BAIL
            if type(v) is uuid.UUID:
                return str(v)
            return BAIL
        return conv_uuid
    if t is fields.Integer:
        if field.as_string:
            raise Unsupported("Integer as_string")
        return _with_validators(lambda v: v if type(v) is int else BAIL, field, "int")
    if t is fields.Boolean:
        if field.validators:
            raise Unsupported("Boolean validators")
        if field.truthy and (True not in field.truthy or False not in field.falsy):
            raise Unsupported("Boolean without True/False")
        return lambda v: v if v is True or v is False else BAIL
    if t is fields.AwareDateTime:
        if field.validators or field.format not in ("iso", "iso8601") \
                or field.default_timezone is not None:
            raise Unsupported("AwareDateTime options")

        def conv_dt(v):
            if type(v) is str:
                try:
                    v = _fromisoformat(v)
                except (TypeError, AttributeError, ValueError):
                    return BAIL
            elif not isinstance(v, datetime):
                return BAIL
            tz = v.tzinfo
            if tz is None or tz.utcoffset(v) is None:  # marshmallow.utils.is_aware
                return BAIL
            return v
        return conv_dt
    if t is fields.List:
        inner = field.inner
        inner_conv = _load_conv(inner, top_level=False)
        inner_allow_none = inner.allow_none

        def conv_list(v):
            if type(v) is not list:
                return BAIL
            out = []
            append = out.append
            for item in v:
                if item is None:
                    if not inner_allow_none:
                        return BAIL
                    append(None)
                    continue
                r = inner_conv(item)
                if r is BAIL:
                    return BAIL
                append(r)
            return out
        return _with_validators(conv_list, field, "list")
    if t is fields.Nested:
        if field.validators or field.many or field.only or field.exclude \
                or field.unknown not in (None, RAISE):
            raise Unsupported("Nested options")
        nested = compile_loader(field.schema, top_level=False)
        if nested is None:
            raise Unsupported("nested schema")
        return lambda v: nested(v) if type(v) is dict else BAIL
    if t is fields.Dict:
        if field.validators or field.key_field is not None or field.value_field is not None:
            raise Unsupported("Dict options")
        return lambda v: dict(v) if type(v) is dict else BAIL
    raise Unsupported(f"field {t.__name__}")


def _check_schema(schema: Schema) -> None:
    if any(schema._hooks.values()):
        raise Unsupported("schema hooks")
    if schema.many or schema.partial or schema.unknown != RAISE:
        raise Unsupported("schema options")
    for name in schema.fields:
        if hasattr({}, name):  # marshmallow's get_value would fall back to a dict attribute
            raise Unsupported(f"field name {name}")


def _compile_plan(plan: tuple, known: frozenset | None) -> Conv:
    """The per-field loop shared by loaders and dumpers: data -> dict of converted values,
    or BAIL. Each plan entry is (name, conv, required, allow_none, default,
    default_callable); a missing field is refused if required, else filled with its default
    unless that is `missing` (dumpers' plans always say `missing`). `known`: the keys allowed
    in data (None: any; dump ignores the others). One loop, no call per field but conv."""

    def run(data):
        if type(data) is not dict or (known is not None and not known.issuperset(data)):
            return BAIL
        out = {}
        get = data.get
        for name, conv, required, allow_none, default, default_callable in plan:
            value = get(name, missing)
            if value is missing:
                if required:
                    return BAIL
                if default is not missing:
                    out[name] = default() if default_callable else default
                continue
            if value is None:
                if not allow_none:
                    return BAIL
                out[name] = None
                continue
            value = conv(value)
            if value is BAIL:
                return BAIL
            out[name] = value
        return out
    return run


def compile_loader(schema: Schema, *, top_level: bool = True) -> Conv | None:
    """A function data -> schema.load(data) (top-level UUIDs as str when top_level), or BAIL.
    None when the schema cannot be compiled exactly."""
    try:
        _check_schema(schema)
        plan = []
        for name, field in schema.load_fields.items():
            conv = _load_conv(field, top_level=top_level)
            default = field.load_default
            plan.append((name, conv, field.required, field.allow_none, default,
                         callable(default)))
    except Unsupported:
        return None
    return _compile_plan(tuple(plan), frozenset(schema.load_fields))


def _dump_conv(field: fields.Field) -> Conv:
    """value (present, not None) -> what field.serialize returns, when that output is then
    valid for the field (field.deserialize of it succeeds); else BAIL."""
    _plain_field(field)
    t = type(field)
    if t is fields.String:
        return _load_conv(field, top_level=False)  # str in, same str out, validators run
    if t is fields.UUID:
        if field.validators:
            raise Unsupported("UUID validators")

        def dump_uuid(v):
            if type(v) is uuid.UUID:
                return str(v)
            if type(v) is str and _canonical_uuid(v):
                return v  # str(v): unchanged, and uuid.UUID(v) accepts it
            return BAIL
        return dump_uuid
    if t in (fields.Integer, fields.Boolean):
        return _load_conv(field, top_level=False)  # int/bool in: _serialize returns it as is
    if t is fields.AwareDateTime:
        load = _load_conv(field, top_level=False)

        def dump_dt(v):
            if type(v) is not datetime:
                return BAIL
            out = _isoformat(v)
            return out if load(out) is not BAIL else BAIL
        return dump_dt
    if t is fields.List:
        inner = _dump_conv(field.inner)
        check = _validator_check(field.validators, "list")

        def dump_list(v):
            if type(v) is not list:
                return BAIL
            out = []
            for item in v:
                if item is None:
                    if not field.inner.allow_none:
                        return BAIL
                    out.append(None)
                    continue
                r = inner(item)
                if r is BAIL:
                    return BAIL
                out.append(r)
            if check is not None and not check(out):
                return BAIL
            return out
        return dump_list
    if t is fields.Nested:
        if field.validators or field.many or field.only or field.exclude \
                or field.unknown not in (None, RAISE):
            raise Unsupported("Nested options")
        nested = compile_dumper(field.schema)
        if nested is None:
            raise Unsupported("nested schema")
        return lambda v: nested(v) if type(v) is dict else BAIL
    raise Unsupported(f"field {t.__name__}")


def compile_dumper(schema: Schema) -> Conv | None:
    """A function data -> schema.dump(data) for a dict whose dump then passes
    schema.validate (no errors); BAIL otherwise. None when the schema cannot be compiled."""
    try:
        _check_schema(schema)
        if list(schema.dump_fields) != list(schema.load_fields):
            raise Unsupported("dump and load fields differ")
        # No defaults on dump: a missing optional field is left out (validate fills it later).
        plan = tuple(
            (name, _dump_conv(field), field.required, field.allow_none, missing, False)
            for name, field in schema.dump_fields.items()
        )
    except Unsupported:
        return None
    return _compile_plan(plan, None)  # dump ignores unknown keys, as schema.dump does
