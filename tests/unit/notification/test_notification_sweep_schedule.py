"""The sweep's timer ticks every 2 s, but it looks in the database only when a delivery may be
due: when the earliest pending one is due, at the next tick after this process scheduled a
retry, planned a fallback or lost a send, and otherwise once per idle interval (an idle
notification costs the database one read per interval, not two statements per tick)."""

import time
from contextlib import contextmanager

import pytest
from eventlet.semaphore import Semaphore
from nameko.testing.services import worker_factory

from services.notification import handlers, service
from services.notification.service import NotificationService, Sender
from services.notification.settings import Settings


class FakeDb:
    unit_of_work = None

    @contextmanager
    def session(self):
        yield None


@pytest.fixture
def world(monkeypatch):
    sender = Sender()
    sender.settings = Settings.from_config({})
    sender.slots = Semaphore(sender.settings.send_concurrency)
    sender.sweep_idle, sender.sweep_at, sender.running = 10.0, 0.0, 0
    sender._draining = sender._drain_again = False
    looks, drains, answers = [], [], []

    def next_due_in(_session):
        looks.append(time.monotonic())
        return answers.pop(0)

    def drain_exclusive(*_args):
        drains.append(time.monotonic())
        return 1

    monkeypatch.setattr(handlers, "next_due_in", next_due_in)
    monkeypatch.setattr(sender, "drain_exclusive", drain_exclusive)
    svc = worker_factory(NotificationService, db=FakeDb(), sender=sender)
    return svc, sender, looks, drains, answers


def test_an_idle_sweep_looks_once_then_not_before_its_idle_interval(world):
    svc, sender, looks, drains, answers = world
    answers.append(None)  # nothing pending
    svc.sweep()
    svc.sweep()
    svc.sweep()
    assert len(looks) == 1 and drains == []
    assert sender.sweep_at == pytest.approx(time.monotonic() + 10, abs=1)


def test_the_sweep_looks_again_when_the_earliest_pending_delivery_is_due(world):
    svc, sender, looks, drains, answers = world
    answers.append(3.0)  # a retry in 3 s
    svc.sweep()
    assert sender.sweep_at == pytest.approx(time.monotonic() + 3, abs=1)
    assert drains == []
    answers.append(60.0)  # a lease that ends in a minute: the idle interval comes first
    sender.sweep_at = 0.0
    svc.sweep()
    assert sender.sweep_at == pytest.approx(time.monotonic() + 10, abs=1)


def test_what_is_due_is_drained_and_the_next_tick_looks_again(world):
    svc, sender, looks, drains, answers = world
    answers.append(-0.5)
    svc.sweep()
    assert len(drains) == 1
    assert sender.sweep_due()


def test_a_hint_that_arrives_during_a_look_is_kept(world, monkeypatch):
    svc, sender, looks, drains, answers = world

    def during_the_look(_session):
        sender.look_again_at(time.monotonic())  # e.g. a send scheduled a retry meanwhile
        return None

    monkeypatch.setattr(handlers, "next_due_in", during_the_look)
    svc.sweep()
    assert sender.sweep_due()


def test_a_failed_look_is_tried_again_at_the_next_tick(world):
    svc, sender, looks, drains, answers = world
    with pytest.raises(IndexError):  # no answer: the database "failed"
        svc.sweep()
    assert sender.sweep_due()


@pytest.mark.parametrize("status", ["retry", "failed"])
def test_a_retry_or_a_failure_makes_the_next_tick_look(world, status):
    svc, sender, *_ = world
    sender.sweep_at = time.monotonic() + 10
    sender.slots.acquire()

    def send(*_args, **_kwargs):
        return handlers.Outcome("d-1", status, "file", "unit", "email")

    sender._run(send, FakeDb(), {"id": "d-1"}, None)
    assert sender.sweep_due()


def test_a_send_that_could_not_be_finished_makes_the_next_tick_look(world):
    svc, sender, *_ = world
    sender.sweep_at = time.monotonic() + 10
    sender.slots.acquire()

    def send(*_args, **_kwargs):
        raise ConnectionError("database unreachable")

    sender._run(send, FakeDb(), {"id": "d-1"}, None)
    assert sender.sweep_due()


def test_a_sent_delivery_does_not_make_the_sweep_look(world):
    svc, sender, *_ = world
    sender.sweep_at = time.monotonic() + 10
    sender.slots.acquire()

    def send(*_args, **_kwargs):
        return handlers.Outcome("d-1", "sent", "file", "unit", "email")

    sender._run(send, FakeDb(), {"id": "d-1"}, None)
    assert not sender.sweep_due()


def test_the_idle_interval_is_configurable(tmp_path):
    class Container:
        config = {"NOTIFICATION_SWEEP_IDLE_SECONDS": "30", "DUMAS_VAR_DIR": str(tmp_path)}

    configured, default = Sender(), Sender()
    configured.container = Container()
    default.container = type("Default", (), {"config": {"DUMAS_VAR_DIR": str(tmp_path)}})()
    configured.setup()
    default.setup()
    assert configured.sweep_idle == 30.0
    assert default.sweep_idle == service.SWEEP_IDLE_SECONDS == 10.0
    assert configured.sweep_due()  # the first tick looks (e.g. after a crash)
