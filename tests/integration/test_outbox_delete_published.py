"""OUTBOX_DELETE_PUBLISHED through the services' config (real RabbitMQ, PostgreSQL and SQLite):
on, the relay deletes an event's outbox row once the broker confirmed it; off (the default), it
keeps the row marked published for the retention sweep. A value that is not a boolean, or a
sweep interval that is not a number, stops the service from starting."""

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from support import amqp
from support.databases import execute, rows
from support.outbox import stage
from support.service_config import load_config
from support.wait import wait_for

from services.intake.db import metadata as intake_metadata
from services.routing.db import outbox as routing_outbox
from services.routing.service import RoutingService
from shared import retention
from shared.nameko_ext import Database


def published_ids(capture) -> list[str]:
    return [m["event_id"] for m, _ in capture.drain()]


def outbox_rows(url, table):
    return rows(url, select(table.c.event_id, table.c.published_at).order_by(table.c.id))


def provider_from_config(service: str, metadata, **local) -> Database:
    """The Database provider set up as the service would set it up from its config.yaml (the
    environment substituted), pointed at the test's database and broker."""
    provider = Database(metadata)
    provider.container = SimpleNamespace(service_name=service,
                                         config={**load_config(service), **local})
    provider.setup()
    return provider


@pytest.mark.parametrize(("setting", "kept"), [("true", False), ("false", True), (None, True)],
                         ids=["on", "off", "default"])
def test_the_relay_built_from_config_deletes_confirmed_rows_only_when_asked(
        intake_db_url, amqp_uri, monkeypatch, setting, kept):
    if setting is None:
        monkeypatch.delenv("OUTBOX_DELETE_PUBLISHED", raising=False)
    else:
        monkeypatch.setenv("OUTBOX_DELETE_PUBLISHED", setting)
    capture = amqp.Capture(amqp_uri, "intake.events")
    provider = provider_from_config("intake", intake_metadata, DATABASE_URL=intake_db_url,
                                    AMQP_URI=amqp_uri)
    table = intake_metadata.tables["outbox"]
    try:
        ids = stage((provider.engine, table, provider.sessionmaker), 3)
        assert provider.relay.publish_batch() == 3
    finally:
        provider.relay._close()
        provider.engine.dispose()

    assert sorted(published_ids(capture)) == sorted(ids), "published either way"
    left = outbox_rows(intake_db_url, table)
    if kept:
        assert sorted(r.event_id for r in left) == sorted(ids)
        assert all(r.published_at is not None for r in left), "marked published"
    else:
        assert left == [], "deleted once confirmed"


@pytest.mark.parametrize(("setting", "kept"), [("true", False), ("false", True)],
                         ids=["on", "off"])
def test_a_running_service_configured_to_delete_published_rows_leaves_none(
        start_service, pg_urls, amqp_uri, monkeypatch, setting, kept):
    monkeypatch.setenv("OUTBOX_DELETE_PUBLISHED", setting)
    url = pg_urls["routing"]
    capture = amqp.Capture(amqp_uri, "routing.events")
    event_id = str(uuid.uuid4())
    execute(url, routing_outbox.insert().values(
        event_id=event_id, exchange="routing.events", routing_key="complaint_routed",
        correlation_id=event_id, body=json.dumps({"event_id": event_id}),
        created_at=datetime.now(UTC)))

    start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[100, 200],
                  OUTBOX_DELETE_PUBLISHED=load_config("routing")["OUTBOX_DELETE_PUBLISHED"])

    wait_for(lambda: published_ids(capture) == [event_id], timeout=20,
             message="the relay published the staged event")
    if kept:
        wait_for(lambda: [r.published_at is not None for r in outbox_rows(url, routing_outbox)]
                 == [True], timeout=10, message="the row is kept, marked published")
    else:
        wait_for(lambda: outbox_rows(url, routing_outbox) == [], timeout=10,
                 message="the row is deleted once confirmed")


@pytest.mark.parametrize(("env", "message"), [
    ({"OUTBOX_DELETE_PUBLISHED": "ya"},
     "OUTBOX_DELETE_PUBLISHED must be a boolean \\(true or false\\), got 'ya'"),
    ({"OUTBOX_RETENTION_SWEEP_SECONDS": "sejam"},
     "OUTBOX_RETENTION_SWEEP_SECONDS must be a number, got 'sejam'"),
])
def test_a_service_with_an_unreadable_outbox_setting_refuses_to_start(
        tmp_path, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path}/intake.sqlite3"
    with pytest.raises(retention.RetentionConfigError, match=message):
        provider_from_config("intake", intake_metadata, DATABASE_URL=url, AMQP_URI="memory://")
