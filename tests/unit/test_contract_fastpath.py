"""The compiled fast paths of the contracts (shared/contracts/fastpath.py) give exactly what plain
marshmallow gives: for every registered (event type, version), generated valid payloads and
many damaged ones (missing fields, wrong types, extra fields, bad dates, NUL bytes, huge
strings, wrong enum values, non-canonical UUIDs, ...) load, dump and build to the same values
of the same types in the same key order, or are refused with the same reason and message.

The generator is seeded (reproducible) and built from the schema declarations, so a field or
validator added to a schema is covered without editing this file; a regex it cannot produce
a valid value for fails the test instead of being skipped."""

import contextlib
import copy
import json
import random
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from marshmallow import Schema, ValidationError, fields, validate

from shared.contracts import (
    CURRENT_VERSIONS,
    Event,
    MalformedEvent,
    build_event,
    fastpath,
    load_event,
)
from shared.contracts import envelope as env_module
from shared.contracts.envelope import UPCASTERS
from shared.contracts.events import PRODUCERS, SCHEMAS

KEYS = sorted(SCHEMAS)
VALID_PER_KEY = 150
DAMAGED_PER_KEY = 300

# Values for each regex a schema declares: a valid one from the generator below, damaged ones
# from the mutations.
REGEX_VALUES = {
    r"^[a-z0-9][a-z0-9_-]{0,63}$": lambda r: (
        r.choice("abcdefghijklmnopqrstuvwxyz0123456789")
        + "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789_-")
                  for _ in range(r.choice([0, 1, 10, 63])))
    ),
    r"^\d{2}\.\d{2}\.\d{2}$": lambda r: ".".join(f"{r.randrange(100):02d}" for _ in range(3)),
    r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$": lambda r: (
        ".".join(f"{r.randrange(100):02d}" for _ in range(3)) + f".{r.randrange(10000):04d}"),
    r"^[0-9a-f]{64}$": lambda r: f"{r.getrandbits(256):064x}",
}

ALPHABET = ["a", "Z", " ", "é", "\u0000", "\n", "\u200b", "😀", "\ud800", "ß", "\t", "1"]
OFFSETS = [UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30)),
           timezone(timedelta(hours=5, minutes=45, seconds=30))]


def text(r: random.Random, lo: int, hi: int) -> str:
    n = r.choice([lo, hi, r.randint(lo, hi), r.randint(lo, min(hi, lo + 20))])
    return "".join(r.choice(ALPHABET) for _ in range(n))


def aware_datetime(r: random.Random) -> datetime:
    return datetime(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28), r.randrange(24),
                    r.randrange(60), r.randrange(60), r.choice([0, r.randrange(10**6)]),
                    tzinfo=r.choice(OFFSETS))


def valid_value(field: fields.Field, r: random.Random, *, wire: bool):
    """A value the field accepts. wire=True: as on the wire (JSON types); False: as a producer
    passes it to build_event (datetime and UUID objects allowed)."""
    validators = {type(v): v for v in field.validators}
    if isinstance(field, fields.Nested):
        return valid_data(field.schema, r, wire=wire)
    if isinstance(field, fields.List):
        length = validators.get(validate.Length)
        hi = length.max if length and length.max is not None else 3
        return [valid_value(field.inner, r, wire=wire) for _ in range(r.randint(0, hi))]
    if isinstance(field, fields.AwareDateTime):
        value = aware_datetime(r)
        return value.isoformat() if wire else value
    if isinstance(field, fields.UUID):
        value = uuid.UUID(int=r.getrandbits(128))
        return str(value) if wire or r.random() < 0.5 else value
    if isinstance(field, fields.Boolean):
        return r.random() < 0.5
    if isinstance(field, fields.Integer):
        rng = validators.get(validate.Range)
        lo = rng.min if rng and rng.min is not None else -(10**6)
        hi = rng.max if rng and rng.max is not None else 10**6
        return r.choice([lo, hi, r.randint(lo, hi)])
    if isinstance(field, fields.String):
        if validate.OneOf in validators:
            return r.choice(tuple(validators[validate.OneOf].choices))
        if validate.Regexp in validators:
            pattern = validators[validate.Regexp].regex.pattern
            assert pattern in REGEX_VALUES, f"no generator for regex {pattern}: add one"
            return REGEX_VALUES[pattern](r)
        length = validators.get(validate.Length)
        return text(r, length.min or 0 if length else 0,
                    length.max if length and length.max is not None else 50)
    raise AssertionError(f"no generator for {type(field).__name__}: add one")


def valid_data(schema: Schema, r: random.Random, *, wire: bool) -> dict:
    data = {}
    for name, field in schema.load_fields.items():
        if not field.required and r.random() < 0.3:
            continue  # left to its default
        if field.allow_none and r.random() < 0.2:
            data[name] = None
            continue
        data[name] = valid_value(field, r, wire=wire)
    return data


DAMAGE_VALUES = [
    None, "", "x", 0, 1, -1, 2**70, 1.0, 1.5, True, False, [], {}, ["email"], [None], ("email",),
    b"abc", "\u0000", "\u0000" * 10, "a" * 4001, "\u0000" * 5000, "kemarin", "2025-03-03",
    "2025-03-03T08:15:30", "2025-03-03T08:15:30Z", "2025-02-30T08:15:30+07:00",
    "2025-03-03T08:15:30+07:00", "20250303T081530+0700", " 2025-03-03T08:15:30+07:00",
    datetime(2025, 3, 3, 8, 15), datetime(2025, 3, 3, 8, 15, tzinfo=UTC), date(2025, 3, 3),
    "3F0C6A52-8D5E-4C1B-9A57-2B1E6F4D9C10", "{3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10}",
    "3f0c6a528d5e4c1b9a572b1e6f4d9c10", "urn:uuid:3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10",
    "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c1g", uuid.UUID(int=7), uuid.UUID(int=7).bytes,
    "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10\n", "17.08.05\n", "17.08.05", "17.08.05.2003",
    "kua-merigi", "Kua-Merigi", "nikah_rujuk", "sengketa_tanah", "email", "EMAIL", "live",
    "true", "1", "yes", "routed", {"sha256": "ab" * 32}, OrderedDict(a=1), "٣", "²",
]


class StrSub(str):
    pass


def damage(data: dict, schema: Schema, r: random.Random) -> None:
    """One mutation of data (in place), possibly inside a nested dict or list."""
    names = list(schema.load_fields)
    kind = r.choice(["drop", "set", "set", "extra", "nested", "type"])
    if kind == "drop" and data:
        del data[r.choice(list(data))]
    elif kind == "extra":
        data[r.choice(["email", "unknown", "", "Complaint_id", "ö"])] = r.choice(DAMAGE_VALUES)
    elif kind == "nested":
        for name in r.sample(names, len(names)):
            value, field = data.get(name), schema.load_fields[name]
            if isinstance(field, fields.Nested) and isinstance(value, dict):
                return damage(value, field.schema, r)
            if isinstance(field, fields.List) and isinstance(value, list) and value:
                i = r.randrange(len(value))
                if isinstance(field.inner, fields.Nested) and isinstance(value[i], dict):
                    return damage(value[i], field.inner.schema, r)
                value[i] = r.choice(DAMAGE_VALUES)
                return None
        data[r.choice(names)] = r.choice(DAMAGE_VALUES)
    elif kind == "type":
        name = r.choice(names)
        if name in data and isinstance(data[name], str):
            data[name] = StrSub(data[name])
        elif name in data and isinstance(data[name], list):
            data[name] = tuple(data[name])
        elif name in data and isinstance(data[name], dict):
            data[name] = OrderedDict(data[name])
    else:
        data[r.choice(names)] = r.choice(DAMAGE_VALUES)
    return None


def paths(schema: Schema, prefix=()):
    """Where a value can be damaged: each field, each nested field, a list's first item."""
    for name, field in schema.load_fields.items():
        yield (*prefix, name), field
        if isinstance(field, fields.Nested):
            yield from paths(field.schema, (*prefix, name))
        elif isinstance(field, fields.List):
            yield (*prefix, name, 0), field.inner
            if isinstance(field.inner, fields.Nested):
                yield from paths(field.inner.schema, (*prefix, name, 0))


def with_damage_at(data: dict, schema: Schema, path: tuple, value, r: random.Random, *,
                   wire: bool) -> dict:
    """data with `value` at `path` (containers on the way created valid); DROP removes it."""
    container, container_schema, container_field = data, schema, None
    for step in path[:-1]:
        if isinstance(step, int):  # into a list's first item
            if not container:
                container.append(valid_value(container_field.inner, r, wire=wire))
            container, container_schema = container[0], container_field.inner.schema
            continue
        container_field = container_schema.load_fields[step]
        if isinstance(container_field, fields.Nested):
            if not isinstance(container.get(step), dict):
                container[step] = valid_data(container_field.schema, r, wire=wire)
            container, container_schema = container[step], container_field.schema
        else:
            if not isinstance(container.get(step), list):
                container[step] = []
            container = container[step]
    last = path[-1]
    if isinstance(last, int):
        if value is DROP:
            del container[:1]
            return data
        if not container:
            container.append(None)
        container[0] = value
    elif value is DROP:
        container.pop(last, None)
    else:
        container[last] = value
    return data


DROP = object()


def cases(key, *, wire: bool, systematic: bool = True):
    """(label, data) pairs, seeded per key: valid payloads; every field (nested ones too) of a
    valid payload missing or set to each damage value in turn; payloads with 1-3 random
    damages."""
    r = random.Random(f"{key}-{wire}")
    schema = env_module.event_schema(*key)
    for _ in range(VALID_PER_KEY):
        yield "valid", valid_data(schema, r, wire=wire)
    for path, _ in paths(schema) if systematic else ():
        for value in [DROP, StrSub("x"), *DAMAGE_VALUES]:
            yield "damaged", with_damage_at(valid_data(schema, r, wire=wire), schema, path,
                                            value, r, wire=wire)
    for _ in range(DAMAGED_PER_KEY):
        data = valid_data(schema, r, wire=wire)
        for _ in range(r.choice([1, 1, 2, 3])):
            damage(data, schema, r)
        yield "damaged", data


def same(a, b) -> bool:
    """Equal, of the same types all the way down, dict keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    return a == b


def containers(value, found=None) -> set[int]:
    found = set() if found is None else found
    if isinstance(value, (dict, list)):
        found.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            containers(item, found)
    return found


# -- plain marshmallow, as the contracts did before the fast path -------------------------------


def reference_load_data(key, data):
    try:
        loaded = env_module.event_schema(*key).load(data)
    except ValidationError as exc:
        return ("refused", exc.messages)
    for name, value in loaded.items():
        if isinstance(value, uuid.UUID):
            loaded[name] = str(value)
    return ("loaded", loaded)


def reference_dump(event_type, data):
    schema = env_module.event_schema(event_type)
    try:
        dumped = schema.dump(data)
        errors = schema.validate(dumped)
    except Exception as exc:  # noqa: BLE001 - the exact exception is what is compared
        return ("raised", type(exc), str(exc))
    if errors:
        return ("raised", ValueError, f"invalid {event_type} event: {errors}")
    return ("dumped", dumped)


def reference_load_event(body, expected_types=None) -> Event:
    """load_event as it was before the fast path (marshmallow only)."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedEvent("undecodable", str(exc)) from exc
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedEvent("undecodable", str(exc)) from exc
    if not isinstance(body, dict):
        raise MalformedEvent("invalid_envelope", "body is not a JSON object")
    try:
        env = env_module._ENVELOPE.load(body)
    except ValidationError as exc:
        raise MalformedEvent("invalid_envelope", exc.messages) from exc
    event_type, version = env["event_type"], env["version"]
    if expected_types is not None and event_type not in expected_types:
        raise MalformedEvent("unexpected_type", event_type)
    if (event_type, version) not in SCHEMAS:
        raise MalformedEvent("unknown_version", f"{event_type} v{version}")
    data = env["data"]
    while version < CURRENT_VERSIONS[event_type]:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    try:
        loaded = env_module.event_schema(event_type, version).load(data)
    except ValidationError as exc:
        raise MalformedEvent("invalid_data", exc.messages) from exc
    for name, value in loaded.items():
        if isinstance(value, uuid.UUID):
            loaded[name] = str(value)
    return Event(event_id=str(env["event_id"]), event_type=event_type, version=version,
                 occurred_at=env["occurred_at"], correlation_id=env["correlation_id"],
                 producer=env["producer"], data=loaded)


def outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as exc:  # noqa: BLE001
        return ("raised", type(exc), str(exc), getattr(exc, "reason", None),
                getattr(exc, "details", None))


def same_outcome(a, b) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "raised":
        return a[1:] == b[1:]
    x, y = a[1], b[1]
    if isinstance(x, Event):
        return all(same(getattr(x, f), getattr(y, f)) for f in Event.__dataclass_fields__)
    return same(x, y)


# -- the compiled fast path against marshmallow -------------------------------------------------


def test_every_registered_schema_and_the_envelope_have_a_fast_path():
    # If a schema gains a declaration the compiler does not reproduce, it silently falls back
    # to marshmallow: still correct, but the CPU saving is gone. Make that a visible decision.
    assert env_module._ENVELOPE_FAST is not None
    for key in KEYS:
        assert env_module._fast_loader(*key) is not None, key
    for event_type in CURRENT_VERSIONS:
        assert env_module._fast_dumper(event_type) is not None, event_type


@pytest.mark.parametrize("key", KEYS, ids=[f"{t}-v{v}" for t, v in KEYS])
def test_loading_data_gives_what_marshmallow_gives(key):
    loader = env_module._fast_loader(*key)
    hits = {"valid": 0, "damaged": 0}
    for label, data in cases(key, wire=True):
        pristine = copy.deepcopy(data)
        expected = reference_load_data(key, data)
        fast = loader(data)
        assert same(data, pristine), "the fast path must not modify its input"
        if fast is not fastpath.BAIL:
            hits[label] += 1
            assert expected[0] == "loaded", (key, data, expected)
            assert same(fast, expected[1]), (key, data, fast, expected[1])
            assert not containers(fast) & containers(data), "output shares a list/dict"
        # What load_event's data step does, fast path or not.
        got = outcome(env_module._load_data, *key, data)
        if expected[0] == "loaded":
            assert got[0] == "ok" and same(got[1], expected[1]), (key, data, got, expected)
        else:
            assert got[:4] == ("raised", MalformedEvent, f"invalid_data: {expected[1]}",
                               "invalid_data"), (key, data, got, expected)
            assert got[4] == expected[1]
    # Well-formed wire payloads take the fast path (that is the saving).
    assert hits["valid"] == VALID_PER_KEY, hits


@pytest.mark.parametrize("event_type", sorted(CURRENT_VERSIONS))
def test_dumping_data_for_build_event_gives_what_marshmallow_gives(event_type):
    key = (event_type, CURRENT_VERSIONS[event_type])
    dumper = env_module._fast_dumper(event_type)
    hits = 0
    for label, data in cases(key, wire=False):
        pristine = copy.deepcopy(data)
        expected = reference_dump(event_type, data)
        fast = dumper(data)
        assert same(data, pristine), "the fast path must not modify its input"
        if fast is not fastpath.BAIL:
            hits += label == "valid"
            assert expected[0] == "dumped", (event_type, data, expected)
            assert same(fast, expected[1]), (event_type, data, fast, expected[1])
            assert json.dumps(fast) == json.dumps(expected[1])  # byte-identical body
            assert not containers(fast) & containers(data), "output shares a list/dict"
        got = outcome(env_module._dump_data, event_type, data)
        if expected[0] == "dumped":
            assert got[0] == "ok" and same(got[1], expected[1]), (event_type, data, got)
        else:
            assert got[:3] == expected, (event_type, data, got, expected)
    assert hits == VALID_PER_KEY


ENVELOPE_DAMAGE = {
    "event_id": ["not-a-uuid", str(uuid.uuid4()).upper(), uuid.uuid4().hex, None, 5],
    "event_type": ["", "x" * 65, "complaint_teleported", 5, None],
    "version": [0, 1, 2, 3, 1001, "1", 1.0, True, None],
    "occurred_at": ["2025-03-03T08:15:30", "kemarin", "2025-03-03T08:15:30Z", None,
                    datetime(2025, 3, 3, tzinfo=UTC)],
    "correlation_id": ["", "c" * 65, 5, None, "\u0000"],
    "producer": ["", "p" * 33, None, "intake"],
    "data": [[], "x", None, {}, OrderedDict()],
}


def envelopes(key):
    """Whole envelopes of one type as they arrive: valid, damaged data, damaged envelope, JSON
    text and bytes."""
    r = random.Random(f"envelope-{key}")
    event_type, version = key
    for label, data in cases(key, wire=True, systematic=False):
        body = {"event_id": str(uuid.UUID(int=r.getrandbits(128))), "event_type": event_type,
                "version": version, "occurred_at": aware_datetime(r).isoformat(),
                "correlation_id": text(r, 1, 64), "producer": PRODUCERS[event_type],
                "data": data}
        if r.random() < 0.3:
            field = r.choice(list(ENVELOPE_DAMAGE))
            if r.random() < 0.2:
                del body[field]
            else:
                body[field] = r.choice(ENVELOPE_DAMAGE[field])
        if r.random() < 0.1:
            body["extra"] = 1
        form = r.random()
        with contextlib.suppress(TypeError):  # not JSON-able: stays a dict
            if form < 0.2:
                body = json.dumps(body)
            elif form < 0.3:
                body = json.dumps(body).encode()
        yield body


@pytest.mark.parametrize("key", KEYS, ids=[f"{t}-v{v}" for t, v in KEYS])
def test_load_event_gives_what_plain_marshmallow_gives(key):
    expected_types = (key[0],)
    for body in envelopes(key):
        expected = outcome(reference_load_event, copy.deepcopy(body), expected_types)
        got = outcome(load_event, body, expected_types)
        assert same_outcome(got, expected), (body, got, expected)


def test_older_versions_are_upcast_the_same_way_on_the_fast_path():
    data = next(d for label, d in cases(("complaint_received", 1), wire=True)
                if label == "valid")
    body = {"event_id": str(uuid.uuid4()), "event_type": "complaint_received", "version": 1,
            "occurred_at": "2025-03-03T08:15:30+07:00", "correlation_id": "c-1",
            "producer": "intake", "data": data}

    event = load_event(body)

    assert event.version == 2 and event.data["attachments"] == []
    assert same_outcome(("ok", event), outcome(reference_load_event, body))


@pytest.mark.parametrize("event_type", sorted(CURRENT_VERSIONS))
def test_build_event_then_load_event_round_trips_on_the_fast_path(event_type):
    key = (event_type, CURRENT_VERSIONS[event_type])
    for label, data in cases(key, wire=False, systematic=False):
        if label != "valid":
            continue
        built = build_event(event_type, data, correlation_id="c-1")
        wire = json.dumps(built).encode()
        assert same_outcome(outcome(load_event, wire), outcome(reference_load_event, wire))
