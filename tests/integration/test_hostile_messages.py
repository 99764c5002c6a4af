"""Malformed and hostile messages to every AMQP consumer of every service, on real RabbitMQ and
PostgreSQL with the real service containers.

For each subscription in shared.messaging.SUBSCRIPTIONS: wrong types, missing fields, unknown
versions, another event type, invalid UTF-8, a 5 MB body, non-JSON content types (pickle
included), a JSON array, null, empty and absurdly nested bodies are published to the consumer's
queue. Every one must be parked in `<queue>.dead` with the reason the operator will see, and the
consumer must stay up: a valid message published afterwards is still handled.
"""

import importlib.util
import json
import pickle
import uuid
from pathlib import Path

import pytest
from kombu import Connection
from prometheus_client import REGISTRY
from support import amqp
from support.wait import wait_for

from services.intake.service import IntakeService
from services.notification.service import NotificationService
from services.reporting.service import ReportingService
from services.routing.service import RoutingService
from shared import messaging
from shared.contracts import build_event

# Valid data for every event type: the samples of the contract tests (one source of truth).
_spec = importlib.util.spec_from_file_location(
    "dumas_contract_samples", Path(__file__).resolve().parents[1] / "unit" / "test_contracts.py"
)
_samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_samples)
sample_data = _samples.sample_data

SERVICES = {
    "intake": IntakeService,
    "routing": RoutingService,
    "notification": NotificationService,
    "reporting": ReportingService,
}
MALFORMED = {"undecodable", "invalid_envelope", "unexpected_type", "unknown_version",
             "invalid_data"}
HUGE = 5 * 1024 * 1024


def subscriptions_of(service):
    return [(producer, event_type) for consumer, producer, event_type in
            messaging.SUBSCRIPTIONS if consumer == service]


def valid_event(event_type):
    data = dict(sample_data(event_type))
    complaint_id = str(uuid.uuid4())
    if "complaint_id" in data:
        data["complaint_id"] = complaint_id
    return build_event(event_type, data, correlation_id=complaint_id)


def other_type(event_type):
    return "unit_stage_changed" if event_type != "unit_stage_changed" else "complaint_routed"


def hostile_cases(event_type):
    """(name, body, content_type, expected reason) of everything a consumer must survive."""
    good = valid_event(event_type)

    def with_data(**changes):
        envelope = json.loads(json.dumps(good))
        envelope["data"].update(changes)
        return json.dumps(envelope)

    def without(field):
        envelope = json.loads(json.dumps(good))
        envelope.pop(field)
        return json.dumps(envelope)

    first_field = next(iter(good["data"]))
    required_missing = json.loads(json.dumps(good))
    required_missing["data"] = {}
    huge = json.loads(json.dumps(good))
    huge["data"]["padding"] = "x" * HUGE
    app_json = "application/json"
    return [
        ("wrong_types", with_data(**{k: [1, {"a": None}] for k in good["data"]}), app_json,
         "invalid_data"),
        ("wrong_type_one_field", with_data(**{first_field: 12345}), app_json, "invalid_data"),
        ("missing_envelope_field", without("event_id"), app_json, "invalid_envelope"),
        ("missing_data_fields", json.dumps(required_missing), app_json, "invalid_data"),
        ("version_as_string", json.dumps({**good, "version": "1"}), app_json,
         "invalid_envelope"),
        ("unknown_version", json.dumps({**good, "version": 999}), app_json, "unknown_version"),
        ("another_event_type", json.dumps(valid_event(other_type(event_type))), app_json,
         "unexpected_type"),
        ("unknown_event_type", json.dumps({**good, "event_type": "complaint_exploded"}),
         app_json, "unexpected_type"),
        ("invalid_utf8", b'{"event_id": "\xff\xfe\xfd"}', app_json, "undecodable"),
        ("huge_body", json.dumps(huge), app_json, "invalid_data"),
        ("plain_text", "hapus semua pengaduan", "text/plain", "undecodable"),
        ("pickle", pickle.dumps({"event_type": event_type}), "application/x-python-serialize",
         "undecodable"),
        ("xml", "<event><type>x</type></event>", "application/xml", "undecodable"),
        ("json_array", json.dumps([good, good]), app_json, "invalid_envelope"),
        ("json_null", "null", app_json, "invalid_envelope"),
        ("not_json", "{event_id: 1,", app_json, "undecodable"),
        ("deep_nesting", "[" * 100_000 + "]" * 100_000, app_json, "undecodable"),
        ("json_string_of_garbage", json.dumps("[" * 100_000), app_json, "undecodable"),
        ("nested_garbage_data", with_data(**{first_field: {"a": [[[[{"b": "\u0000" * 50}]]]]}}),
         app_json, "invalid_data"),
    ]


def drain(amqp_uri, queue):
    """Every message now in `queue` as (raw body, headers). Unlike support.amqp.get_all this never
    decodes: some of these bodies are too deeply nested for the JSON parser."""
    out = []
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            out.append((message.body, dict(message.headers or {})))
    return out


def outcome_count(service, event_type, outcome):
    return REGISTRY.get_sample_value(
        "dumas_event_handler_duration_seconds_count",
        {"service": service, "event_type": event_type, "outcome": outcome},
    ) or 0.0


def assert_consumer_survives_hostile_messages(start_service, amqp_uri, service, producer,
                                              event_type):
    running = start_service(SERVICES[service], EVENT_RETRY_DELAYS_MS=[50, 100])
    queue = messaging.consumer_queue_name(service, event_type)
    exchange = f"{producer}.events"
    cases = hostile_cases(event_type)
    ok_before = outcome_count(service, event_type, "ok")

    for name, body, content_type, _ in cases:
        amqp.publish(amqp_uri, exchange, event_type, body, content_type=content_type,
                     headers={"x-test-case": name})

    parked = {}

    def all_parked():
        for body, headers in drain(amqp_uri, messaging.dead_queue_name(queue)):
            parked[headers.get("x-test-case")] = (body, headers)
        return len(parked) >= len(cases)

    wait_for(all_parked, timeout=60, message=f"{len(cases)} hostile messages parked in {queue}")
    reasons = {name: headers.get(messaging.REASON_HEADER) for name, (_, headers) in
               parked.items()}
    assert reasons == {name: reason for name, _, _, reason in cases}
    for _, headers in parked.values():
        assert headers[messaging.QUEUE_HEADER] == queue
        assert headers[messaging.ERROR_HEADER]  # what was wrong, for `dumas dlq show`
    assert json.loads(parked["huge_body"][0])["data"]["padding"] == "x" * HUGE  # kept whole
    assert outcome_count(service, event_type, "ok") == ok_before  # none reached the handler

    # The consumer is still up: a valid message afterwards reaches its handler. The handler
    # may still refuse it for domain reasons (these samples are about complaints the service has
    # never seen), but then it is parked by the handler, never as malformed.
    assert not running.container._died.ready()
    amqp.publish(amqp_uri, exchange, event_type, json.dumps(valid_event(event_type)),
                 headers={"x-test-case": "valid"})
    refused = []

    def handled():
        refused.extend(drain(amqp_uri, messaging.dead_queue_name(queue)))
        return outcome_count(service, event_type, "ok") == ok_before + 1 or refused

    wait_for(handled, timeout=30,
             message=f"a valid {event_type} handled by {service} after the hostile ones")
    for _, headers in refused:
        assert headers.get("x-test-case") == "valid"
        assert headers[messaging.REASON_HEADER] not in MALFORMED, headers
    wait_for(lambda: amqp.queue_depth(amqp_uri, queue) == 0, timeout=10)


@pytest.mark.parametrize("producer, event_type", subscriptions_of("intake"))
def test_intake_consumers_park_hostile_messages_and_stay_up(
    start_service, amqp_uri, producer, event_type
):
    assert_consumer_survives_hostile_messages(start_service, amqp_uri, "intake", producer,
                                              event_type)


@pytest.mark.parametrize("producer, event_type", subscriptions_of("routing"))
def test_routing_consumers_park_hostile_messages_and_stay_up(
    start_service, amqp_uri, producer, event_type
):
    assert_consumer_survives_hostile_messages(start_service, amqp_uri, "routing", producer,
                                              event_type)


@pytest.mark.parametrize("producer, event_type", subscriptions_of("notification"))
def test_notification_consumers_park_hostile_messages_and_stay_up(
    start_service, amqp_uri, producer, event_type
):
    # Notification asks intake and routing for contacts over RPC when it sends.
    start_service(IntakeService, EVENT_RETRY_DELAYS_MS=[50, 100])
    start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[50, 100])
    assert_consumer_survives_hostile_messages(start_service, amqp_uri, "notification",
                                              producer, event_type)


@pytest.mark.parametrize("producer, event_type", subscriptions_of("reporting"))
def test_reporting_consumers_park_hostile_messages_and_stay_up(
    start_service, amqp_uri, producer, event_type
):
    assert_consumer_survives_hostile_messages(start_service, amqp_uri, "reporting", producer,
                                              event_type)


def test_an_empty_message_is_parked_instead_of_looping_forever(start_service, amqp_uri):
    # An empty body arrives as '' with content_encoding "binary"; re-publishing that copy must
    # not fail (it used to raise LookupError, requeue, and spin on the message for ever).
    running = start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[50, 100])
    queue = messaging.consumer_queue_name("routing", "complaint_received")
    amqp.publish(amqp_uri, "intake.events", "complaint_received", b"",
                 headers={"x-test-case": "empty_body"})
    parked = wait_for(lambda: drain(amqp_uri, messaging.dead_queue_name(queue)), timeout=20,
                      message="the empty message parked")
    assert [headers[messaging.REASON_HEADER] for _, headers in parked] == ["undecodable"]
    assert not running.container._died.ready()


def test_every_service_with_subscriptions_is_covered():
    assert {consumer for consumer, _, _ in messaging.SUBSCRIPTIONS} <= set(SERVICES)
