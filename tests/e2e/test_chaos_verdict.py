"""The chaos run's verdict (tests/chaos/verify.py) catches what it is there to catch: a complaint
answered 2xx and not stored, stored twice, routed twice, a notification sent twice or never
arriving, reporting out of step, a message stranded in a queue. Fed with made-up records, no
services: if this checker were blind, `make chaos` would pass whatever happened."""

from collections import Counter
from types import SimpleNamespace as Row

from chaos.load import Submission
from chaos.verify import verify


def complaint(n, code, status="routed"):
    return Row(id=f"c{n}", tracking_code=code, status=status, channel="web",
               description=f"Pendaftaran nikah belum diproses. [uji CHS1-{n:05d}]")


def delivery(n, audience, status="sent", provider="file", recipient=None, last_error=None,
             delivery_id=None):
    return Row(id=delivery_id or f"d{n}{audience}", complaint_id=f"c{n}", audience=audience,
               recipient=recipient or ("unit:kua-merigi" if audience == "unit" else audience),
               channel="email", template="complaint_routed", status=status,
               provider=provider, last_error=last_error)


class FakeRecords:
    def __init__(self, complaints, deliveries, *, decisions=None, routed_events=None,
                 copies=None, parked=(), held=None, reporting=None):
        self._complaints = complaints
        self._deliveries = deliveries
        ids = [c.id for c in complaints]
        self._decisions = ids if decisions is None else decisions
        self._routed = ids if routed_events is None else routed_events
        self._copies = copies if copies is not None else {
            "file": Counter(d.id for d in deliveries if d.status == "sent")}
        self._parked = list(parked)
        self._held = held or {}
        sent = sum(d.status == "sent" for d in deliveries)
        failed = sum(d.status == "failed" for d in deliveries)
        self._reporting = reporting or (len(complaints), len(self._decisions), sent, failed)
        self._totals = (sent, failed)

    def complaints(self):
        return self._complaints

    def decisions(self):
        return self._decisions

    def routed_events(self):
        return self._routed

    def deliveries(self):
        return self._deliveries

    def provider_copies(self):
        return self._copies

    def parked(self):
        return self._parked

    def held(self, orphaned=None):
        return self._held

    def reporting_totals(self):
        return self._reporting

    def delivery_totals(self):
        return self._totals

    def unpublished(self):
        return {"intake": 0, "routing": 0, "notification": 0}

    def half_written(self):
        return {"complaint_without_history": 0}


def accepted(n, contact="email", channel="web"):
    sub = Submission(n, channel, f"[uji CHS1-{n:05d}]", contact)
    sub.outcome, sub.tracking_code = "accepted", f"DMS-{n}"
    return sub


def run(records, submissions):
    return verify(records, submissions, international=lambda s: "62813")


def test_a_clean_run_has_no_problems():
    records = FakeRecords([complaint(1, "DMS-1")], [delivery(1, "unit"),
                                                   delivery(1, "complainant")])
    verdict = run(records, [accepted(1)])
    assert verdict.problems == []
    assert verdict.total("notified") == 1 and verdict.total("lost") == 0


def test_an_accepted_complaint_that_is_not_stored_is_lost():
    verdict = run(FakeRecords([], []), [accepted(1)])
    assert verdict.total("lost") == 1
    assert "answered 2xx but not stored" in verdict.problems[0]


def test_a_complaint_stored_twice_is_a_duplicate():
    rows = [complaint(1, "DMS-1"), Row(**{**vars(complaint(1, "DMS-2")), "id": "c1b"})]
    records = FakeRecords(rows, [delivery(1, "unit"), delivery(1, "complainant")],
                          decisions=["c1"], routed_events=["c1"])
    verdict = run(records, [accepted(1)])
    assert verdict.total("duplicated") == 1


def test_a_complaint_routed_twice_is_caught():
    records = FakeRecords([complaint(1, "DMS-1")], [delivery(1, "unit")],
                          routed_events=["c1", "c1"])
    verdict = run(records, [accepted(1, contact=None)])
    assert (verdict.total("duplicated"), verdict.total("lost")) == (1, 0)
    assert verdict.total("routed") == 0


def test_a_notification_sent_twice_or_never_arriving_is_caught():
    twice = FakeRecords([complaint(1, "DMS-1")], [
        delivery(1, "unit"), delivery(1, "unit", delivery_id="d1unit-again"),
        delivery(1, "complainant")])
    assert run(twice, [accepted(1)]).total("duplicated") == 1

    never = FakeRecords([complaint(1, "DMS-1")], [delivery(1, "unit"),
                                                  delivery(1, "complainant")],
                        copies={"file": Counter({"d1unit": 1})})
    verdict = run(never, [accepted(1)])
    assert verdict.total("notification_lost") == 1
    assert "never arrived" in verdict.problems[0]


def test_a_missing_notification_is_lost_but_a_failed_one_with_a_reason_is_parked():
    missing = FakeRecords([complaint(1, "DMS-1")], [delivery(1, "unit")])
    assert run(missing, [accepted(1)]).total("notification_lost") == 1

    failed = FakeRecords([complaint(1, "DMS-1")], [
        delivery(1, "unit"),
        delivery(1, "complainant", status="failed", last_error="provider refused: 400")])
    verdict = run(failed, [accepted(1)])
    assert (verdict.total("parked"), verdict.problems) == (1, [])


def test_reporting_out_of_step_and_stranded_messages_are_problems():
    records = FakeRecords([complaint(1, "DMS-1")], [delivery(1, "unit")],
                          reporting=(1, 1, 2, 0), held={"reporting.notification_sent": 3})
    verdict = run(records, [accepted(1, contact=None)])
    assert any("reporting notifications_sent = 2" in p for p in verdict.problems)
    assert any("stranded" in p for p in verdict.problems)
