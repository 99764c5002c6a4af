"""Send slots: a planner takes only free slots, never waits for them, and the in-use count the
`dumas_notification_send_slots_in_use` gauge reports follows reservations and releases."""

from eventlet.semaphore import Semaphore

from services.notification.service import Sender
from services.notification.settings import Settings


def sender_with(concurrency: int) -> Sender:
    sender = Sender()
    sender.settings = Settings.from_config({"NOTIFICATION_SEND_CONCURRENCY": concurrency})
    sender.slots = Semaphore(sender.settings.send_concurrency)
    return sender


def test_a_reservation_takes_only_the_free_slots_without_waiting():
    sender = sender_with(3)
    assert sender.reserve(2) == 2
    assert sender.reserve(5) == 1  # one left: taken, the rest is not waited for
    assert sender.reserve(1) == 0
    assert sender.in_use() == 3


def test_released_slots_are_free_again():
    sender = sender_with(4)
    sender.reserve(4)
    sender.release(3)
    assert sender.in_use() == 1
    assert sender.reserve(4) == 3
