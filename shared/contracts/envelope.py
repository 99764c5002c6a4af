"""The envelope every Dumas message travels in, and strict loading of it."""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from shared.contracts import fastpath
from shared.contracts.events import PRODUCERS, SCHEMAS

CURRENT_VERSIONS: dict[str, int] = {}
for _type, _version in SCHEMAS:
    CURRENT_VERSIONS[_type] = max(_version, CURRENT_VERSIONS.get(_type, 0))

# (event_type, from_version) -> function turning that version's data into the next version's.
UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {
    # complaint_received v1 had no attachments.
    ("complaint_received", 1): lambda data: {**data, "attachments": []},
}


class MalformedEvent(ValueError):
    """A message that can never be processed: it goes straight to the dead-letter queue."""

    def __init__(self, reason: str, details: Any = None):
        super().__init__(reason if details is None else f"{reason}: {details}")
        self.reason = reason
        self.details = details


class EnvelopeSchema(Schema):
    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.Length(1, 64))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1000))
    occurred_at = fields.AwareDateTime(required=True)
    correlation_id = fields.String(required=True, validate=validate.Length(1, 64))
    producer = fields.String(required=True, validate=validate.Length(1, 32))
    data = fields.Dict(required=True)


_ENVELOPE = EnvelopeSchema()
_ENVELOPE_FAST = fastpath.compile_loader(_ENVELOPE)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    version: int
    occurred_at: datetime
    correlation_id: str
    producer: str
    data: dict = field(default_factory=dict)


# One instance per (event type, version), built on first use. Instantiating a marshmallow schema
# deep-copies its declared fields (~10 % of a consumer's CPU when done per message); marshmallow 4
# schemas keep no per-call state, so one instance serves every greenthread.
_INSTANCES: dict[tuple[str, int], Schema] = {}


def event_schema(event_type: str, version: int | None = None) -> Schema:
    """The (shared, reusable) schema instance of an event type's version, current by default."""
    key = (event_type, version or CURRENT_VERSIONS[event_type])
    schema = _INSTANCES.get(key)
    if schema is None:
        schema = _INSTANCES[key] = SCHEMAS[key]()
    return schema


# Fast paths compiled from each schema's declarations (shared/contracts/fastpath.py): they
# return exactly what marshmallow would for well-formed input and fastpath.BAIL for anything
# else, which then goes through marshmallow as before (same result, same errors).
_LOADERS: dict[tuple[str, int], fastpath.Conv | None] = {}
_DUMPERS: dict[str, fastpath.Conv | None] = {}


def _fast_loader(event_type: str, version: int) -> fastpath.Conv | None:
    key = (event_type, version)
    try:
        return _LOADERS[key]
    except KeyError:
        loader = _LOADERS[key] = fastpath.compile_loader(event_schema(event_type, version))
        return loader


def _fast_dumper(event_type: str) -> fastpath.Conv | None:
    try:
        return _DUMPERS[event_type]
    except KeyError:
        dumper = _DUMPERS[event_type] = fastpath.compile_dumper(event_schema(event_type))
        return dumper


def _dump_data(event_type: str, data: dict) -> dict:
    """schema.dump(data), refused with ValueError unless it passes schema.validate."""
    dumper = _fast_dumper(event_type)
    if dumper is not None:
        dumped = dumper(data)
        if dumped is not fastpath.BAIL:
            return dumped
    schema = event_schema(event_type)
    dumped = schema.dump(data)
    errors = schema.validate(dumped)
    if errors:
        raise ValueError(f"invalid {event_type} event: {errors}")
    return dumped


def _load_data(event_type: str, version: int, data: Any) -> dict:
    """schema.load(data) with top-level UUIDs as str; MalformedEvent("invalid_data") if refused."""
    loader = _fast_loader(event_type, version)
    if loader is not None:
        loaded = loader(data)
        if loaded is not fastpath.BAIL:
            return loaded
    try:
        loaded = event_schema(event_type, version).load(data)
    except ValidationError as exc:
        raise MalformedEvent("invalid_data", exc.messages) from exc
    for key, value in loaded.items():
        if isinstance(value, uuid.UUID):
            loaded[key] = str(value)
    return loaded


def build_event(
    event_type: str,
    data: dict,
    *,
    correlation_id: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict:
    """Return the JSON-ready envelope for a new event, validated against its current schema."""
    dumped = _dump_data(event_type, data)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "version": CURRENT_VERSIONS[event_type],
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "correlation_id": str(correlation_id),
        "producer": PRODUCERS[event_type],
        "data": dumped,
    }


def load_event(body: Any, expected_types: tuple[str, ...] | None = None) -> Event:
    """Strictly load an envelope (dict, JSON str or bytes) and its data.

    Raises MalformedEvent with a machine-readable reason:
    `undecodable`, `invalid_envelope`, `unexpected_type`, `unknown_version`, `invalid_data`.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedEvent("undecodable", str(exc)) from exc
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise MalformedEvent("undecodable", str(exc)) from exc
    if not isinstance(body, dict):
        raise MalformedEvent("invalid_envelope", "body is not a JSON object")
    env = _ENVELOPE_FAST(body) if _ENVELOPE_FAST is not None else fastpath.BAIL
    if env is fastpath.BAIL:
        try:
            env = _ENVELOPE.load(body)
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
    loaded = _load_data(event_type, version, data)
    return Event(
        event_id=str(env["event_id"]),
        event_type=event_type,
        version=version,
        occurred_at=env["occurred_at"],
        correlation_id=env["correlation_id"],
        producer=env["producer"],
        data=loaded,
    )
