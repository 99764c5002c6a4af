"""The file provider's disk flush runs off the event loop: while one message is being fsynced,
the process's other greenthreads keep running."""

import os

import eventlet
from eventlet import patcher

from services.notification.domain.render import RenderedMessage
from services.notification.providers import FileProvider

MESSAGE = RenderedMessage(subject="Subjek", text="Teks", html="<p>Teks</p>", sms="Teks")
_blocking_sleep = patcher.original("time").sleep


def test_other_greenthreads_run_while_a_message_is_flushed_to_disk(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def slow_fsync(fd):
        _blocking_sleep(0.3)  # a slow disk: blocks the calling OS thread, like a real fsync
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    ticks = []

    def ticker():
        for _ in range(100):
            ticks.append(1)
            eventlet.sleep(0.01)

    ticking = eventlet.spawn(ticker)
    eventlet.sleep(0)
    before = len(ticks)
    result = FileProvider(tmp_path).send("d-1", "email", "unit@kemenag.example", MESSAGE)
    during = len(ticks) - before
    ticking.kill()

    assert (tmp_path / "d-1.json").exists()
    assert result.provider_message_id == "d-1.json"
    assert during >= 5  # blocked on the event loop, the ticker would not have moved at all
