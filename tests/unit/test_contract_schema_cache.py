"""Event schemas are built once per (type, version) and reused: loading does not construct a
schema per message, and a message that fails validation leaves nothing behind for the next."""

import uuid
from datetime import UTC, datetime

import pytest

from shared.contracts import MalformedEvent, build_event, event_schema, load_event
from shared.contracts.events import SCHEMAS


def routed_data(**overrides) -> dict:
    data = {
        "complaint_id": str(uuid.uuid4()),
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "unit_code": "kua-merigi",
        "unit_name": "KUA Kecamatan Merigi",
        "unit_type": "kua",
        "stage": "live",
        "rule": "kua_by_kecamatan",
        "reason": "Kategori nikah_rujuk di kecamatan asal",
        "category": "nikah_rujuk",
        "channel": "web",
        "confidentiality": "public",
        "routed_at": datetime.now(UTC),
        "due_at": datetime.now(UTC),
    }
    data.update(overrides)
    return data


def test_the_schema_of_an_event_version_is_built_once_and_shared():
    first = event_schema("complaint_routed")
    assert event_schema("complaint_routed") is first
    assert event_schema("complaint_routed", 1) is first
    assert isinstance(first, SCHEMAS[("complaint_routed", 1)])


def test_loading_many_events_constructs_no_schema(monkeypatch):
    event_schema("complaint_routed")  # built on first use
    cls = SCHEMAS[("complaint_routed", 1)]
    built = []
    original_init = cls.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", counting_init)
    for _ in range(5):
        envelope = build_event("complaint_routed", routed_data(), correlation_id="c-1")
        load_event(envelope, expected_types=("complaint_routed",))

    assert built == []


def test_an_invalid_event_does_not_affect_the_next_load_on_the_shared_schema():
    bad = build_event("complaint_routed", routed_data(), correlation_id="c-1")
    bad["data"]["unit_type"] = "pesantren"
    with pytest.raises(MalformedEvent) as refused:
        load_event(bad)
    assert "unit_type" in str(refused.value)

    good_id = str(uuid.uuid4())
    event = load_event(build_event("complaint_routed", routed_data(complaint_id=good_id),
                                   correlation_id=good_id))
    assert event.data["complaint_id"] == good_id
    assert event.data["unit_type"] == "kua"
