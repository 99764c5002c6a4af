"""Wire contracts: one envelope, one marshmallow schema per (event type, version).

Producers call :func:`build_event`; consumers call :func:`load_event`, which is strict: unknown
fields, wrong types, unknown types or versions raise :class:`MalformedEvent`. Older versions are
upcast to the current one so handlers only ever see the newest shape.
"""

from shared.contracts.envelope import (
    CURRENT_VERSIONS,
    Event,
    MalformedEvent,
    build_event,
    event_schema,
    load_event,
)

__all__ = [
    "CURRENT_VERSIONS",
    "Event",
    "MalformedEvent",
    "build_event",
    "event_schema",
    "load_event",
]
