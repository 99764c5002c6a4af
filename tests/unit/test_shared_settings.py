"""The shared adapters' tuning knobs come from each service's config.yaml (`${VAR:default}`),
the one settings mechanism: an operator sets `<SERVICE>_OUTBOX_RELAY_GATHER_MS` or
`<SERVICE>_HTTP_MAX_WORKERS` and the service's config passes it on."""

from types import SimpleNamespace

import pytest
from sqlalchemy import MetaData
from support.service_config import load_config

from shared.db import outbox_table
from shared.nameko_ext import Database, http_worker_limit


def relay_gather_ms(config: dict) -> float:
    metadata = MetaData()
    outbox_table(metadata)
    provider = Database(metadata)
    provider.container = SimpleNamespace(
        config={**config, "DATABASE_URL": "sqlite:///:memory:"}, service_name="test")
    provider.setup()
    try:
        return provider.relay.gather * 1000
    finally:
        provider.engine.dispose()


@pytest.mark.parametrize(("service", "default_ms"), [
    ("intake", 2), ("routing", 2), ("notification", 8), ("reporting", 2),
])
def test_every_service_relay_gathers_its_configured_milliseconds(service, default_ms,
                                                                 monkeypatch):
    variable = f"{service.upper()}_OUTBOX_RELAY_GATHER_MS"
    monkeypatch.delenv(variable, raising=False)
    assert relay_gather_ms(load_config(service)) == pytest.approx(default_ms)

    monkeypatch.setenv(variable, "0")
    assert relay_gather_ms(load_config(service)) == 0

    monkeypatch.setenv(variable, "")  # set but empty: the default, not a crash
    assert relay_gather_ms(load_config(service)) == pytest.approx(2)


def test_relay_gather_is_not_read_from_the_bare_environment(monkeypatch):
    monkeypatch.setenv("OUTBOX_RELAY_GATHER_MS", "50")
    assert relay_gather_ms({"AMQP_URI": "memory://"}) == pytest.approx(2)


def test_http_worker_limit_comes_from_the_config_else_three_quarters_of_the_workers(
        monkeypatch):
    monkeypatch.setenv("INTAKE_HTTP_MAX_WORKERS", "6")
    assert http_worker_limit(load_config("intake")) == 6
    monkeypatch.delenv("INTAKE_HTTP_MAX_WORKERS")
    assert http_worker_limit(load_config("intake")) == 10
    assert http_worker_limit({"max_workers": 20}) == 15
    assert http_worker_limit({"max_workers": 20, "HTTP_MAX_WORKERS": None}) == 15
    assert http_worker_limit({"max_workers": 4, "HTTP_MAX_WORKERS": 9}) == 4
