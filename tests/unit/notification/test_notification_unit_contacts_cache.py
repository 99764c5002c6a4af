"""A unit's official contacts (public data) are fetched from routing once per TTL, not per
message; a failed fetch is not remembered."""

import pytest

from services.notification.service import TtlCache

UNIT = {"code": "kua-merigi", "email": "kua.merigi@kemenag.example", "whatsapp": None}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Routing:
    def __init__(self, answer=UNIT):
        self.calls = 0
        self.answer = answer

    def get_unit_contacts(self):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_contacts_are_fetched_once_within_the_ttl_and_again_after_it():
    clock, routing = Clock(), Routing()
    cache = TtlCache(60, clock=clock)

    first = cache.get("kua-merigi", routing.get_unit_contacts)
    clock.now += 59
    second = cache.get("kua-merigi", routing.get_unit_contacts)
    assert first == second == UNIT
    assert routing.calls == 1

    clock.now += 2
    cache.get("kua-merigi", routing.get_unit_contacts)
    assert routing.calls == 2


def test_each_unit_has_its_own_entry():
    routing = Routing()
    cache = TtlCache(60, clock=Clock())
    cache.get("kua-merigi", routing.get_unit_contacts)
    cache.get("kua-kabawetan", routing.get_unit_contacts)
    assert routing.calls == 2


def test_a_failed_fetch_is_not_cached():
    clock = Clock()
    cache = TtlCache(60, clock=clock)
    failing = Routing(TimeoutError("routing did not answer"))
    with pytest.raises(TimeoutError):
        cache.get("kua-merigi", failing.get_unit_contacts)

    working = Routing()
    assert cache.get("kua-merigi", working.get_unit_contacts) == UNIT
    assert working.calls == 1


def test_a_ttl_of_zero_fetches_every_time():
    routing = Routing()
    cache = TtlCache(0, clock=Clock())
    for _ in range(3):
        cache.get("kua-merigi", routing.get_unit_contacts)
    assert routing.calls == 3
