"""Deliveries planned while every send slot is busy are sent as soon as slots free up, by a
drainer the planner starts, not only by the 2-second sweep (issue 8: a unit's notification
waited for the sweep behind complainant sends)."""

import pytest
from support import amqp
from support.notification_world import FakeIntake, FakeRouting, delivery_rows, new_complaint, routed
from support.wait import wait_for

from services.notification.service import NotificationService


class WithoutSweep(NotificationService):
    """The real service with its periodic sweep switched off: only the planner's drainer can
    send what found no free slot."""

    def sweep(self):  # no @timer: never runs
        raise AssertionError("the sweep is off in this test")


@pytest.fixture
def notification(start_service):
    start_service(FakeIntake)
    start_service(FakeRouting)
    return start_service(WithoutSweep, NOTIFICATION_SEND_CONCURRENCY=1)


def test_deliveries_that_found_no_free_slot_are_sent_without_waiting_for_the_sweep(
    notification, amqp_uri, pg_urls
):
    complaints = [new_complaint({"email": f"warga{i}@contoh.id"}) for i in range(6)]
    for c in complaints:
        amqp.publish_event(amqp_uri, routed(c))

    def all_sent():
        rows = [r for c in complaints for r in delivery_rows(pg_urls["notification"],
                                                             c["complaint_id"])]
        return len(rows) == 12 and all(r.status == "sent" for r in rows)

    # one slot, twelve deliveries (unit + complainant each): eleven found it taken
    wait_for(all_sent, timeout=30, message="every delivery sent through one slot")
