"""routing dies by SIGKILL with complaints in flight; after a restart every complaint is routed and
notified exactly once, and nothing is left in any queue."""

import re
import time

import eventlet
import pytest
from support.wait import TimedOut, wait_for

pytestmark = pytest.mark.e2e

COMPLAINTS = 200
KILL_AFTER = 50  # POSTs answered before routing is killed
CONCURRENCY = 10
DRAIN_TIMEOUT = 90
PILOT_KECAMATAN = "17.08.05"  # Merigi, kua-merigi is `pilot`
OFF_KECAMATAN = "17.08.02"  # Ujan Mas, kua-ujan-mas is `off`: the desk gets it
UNIT_EMAIL_FOR_KECAMATAN = {
    PILOT_KECAMATAN: "kua.merigi@kemenag.example",
    OFF_KECAMATAN: "dumas.kepahiang@kemenag.example",
}
UNIT_FOR_KECAMATAN = {PILOT_KECAMATAN: "kua-merigi", OFF_KECAMATAN: "kankemenag-kepahiang"}
TRACKING_CODE = re.compile(r"DMS-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
CONSUMER_QUEUES = {
    "routing.complaint_received",
    "reporting.complaint_received",
    "intake.complaint_routed",
    "notification.complaint_routed",
    "reporting.complaint_routed",
    "reporting.notification_sent",
    "reporting.notification_failed",
}


@pytest.fixture
def service_env(service_env):
    # all 200 complaints come from one address; intake's per-IP limit (20 a minute) is for
    # the public, not for this test
    return {**service_env, "RATE_LIMIT_IP": f"{COMPLAINTS}/{COMPLAINTS}"}


def test_routing_killed_mid_stream_still_routes_and_notifies_every_complaint_exactly_once(
    dumas, cluster, make_complaint
):
    bodies = [
        make_complaint(
            PILOT_KECAMATAN if i % 2 == 0 else OFF_KECAMATAN, f"pelapor{i:03d}@example.com"
        )
        for i in range(COMPLAINTS)
    ]
    pool = eventlet.GreenPool(CONCURRENCY)
    codes = list(pool.imap(dumas.submit_accepted, bodies[:KILL_AFTER]))
    decided_at_kill = dumas.decisions()
    cluster.kill("routing")
    killed_at = time.monotonic()
    codes += list(pool.imap(dumas.submit_accepted, bodies[KILL_AFTER:]))
    decided_while_down = dumas.decisions()
    assert decided_while_down < COMPLAINTS, "routing was not killed with work still to do"

    cluster.restart("routing")
    restarted_at = time.monotonic()
    wait_for(
        lambda: dumas.routed_in_intake() == COMPLAINTS,
        timeout=DRAIN_TIMEOUT,
        interval=0.2,
        message=f"all {COMPLAINTS} complaints routed in intake",
    )
    routed_at = time.monotonic()
    stats = dumas.stats_when(
        lambda s: s["notifications"]["sent"] >= 2 * COMPLAINTS,
        timeout=60,
        message=f"reporting has seen {2 * COMPLAINTS} notifications sent",
    )
    print(
        f"\ndecisions when routing was killed: {decided_at_kill}/{KILL_AFTER} posted; "
        f"after all POSTs: {decided_while_down}/{COMPLAINTS}; all routed "
        f"{routed_at - restarted_at:.1f} s after the restart "
        f"({routed_at - killed_at:.1f} s after the kill); all notified and reported "
        f"{time.monotonic() - killed_at:.1f} s after the kill"
    )

    # routing: one decision per complaint, no more
    decided = dumas.rows("routing", "SELECT tracking_code, unit_code FROM decisions")
    assert len(decided) == COMPLAINTS
    expected_unit = {
        code: UNIT_FOR_KECAMATAN[body["kecamatan_code"]]
        for code, body in zip(codes, bodies, strict=True)
    }
    assert dict(decided) == expected_unit

    # intake: every complaint's public status says routed, to the right unit
    views = {code: dumas.track(code) for code in codes}
    assert {c: (v["status"], v["unit_code"]) for c, v in views.items()} == {
        c: ("routed", unit) for c, unit in expected_unit.items()
    }

    # notification: one delivery to the unit and one to the complainant per complaint, all sent
    deliveries = dumas.rows("notification", "SELECT status, count(*) FROM deliveries GROUP BY 1")
    assert dict(deliveries) == {"sent": 2 * COMPLAINTS}
    assert dumas.outbox_files() == 2 * COMPLAINTS
    recipients_by_code: dict[str, list[str]] = {}
    for message in dumas.outbox_messages():
        (code,) = set(TRACKING_CODE.findall(message["text"]))
        recipients_by_code.setdefault(code, []).append(message["to"])
    assert {c: sorted(to) for c, to in recipients_by_code.items()} == {
        code: sorted(
            [UNIT_EMAIL_FOR_KECAMATAN[body["kecamatan_code"]], body["complainant"]["email"]]
        )
        for code, body in zip(codes, bodies, strict=True)
    }

    # reporting
    assert stats["total"] == COMPLAINTS
    assert stats["by_status"] == {"routed": COMPLAINTS}
    assert stats["by_unit"] == {
        "kua-merigi": COMPLAINTS // 2,
        "kankemenag-kepahiang": COMPLAINTS // 2,
    }
    assert stats["notifications"] == {"sent": 2 * COMPLAINTS, "failed": 0}

    # the broker: nothing waiting or unacknowledged, nothing parked
    held: list[dict] = []

    def nothing_held() -> bool:
        held.append(dumas.messages_held())
        return not held[-1]

    try:
        wait_for(nothing_held, timeout=15, message="every queue empty")
    except TimedOut:
        pytest.fail(f"queues still holding messages: {held[-1]}")
    depths = dumas.queue_depths()
    assert depths.keys() >= CONSUMER_QUEUES
    dead = {q: n for q, n in depths.items() if q.endswith(".dead")}
    assert dead.keys() >= {f"{q}.dead" for q in CONSUMER_QUEUES}
    assert {q: n for q, n in dead.items() if n} == {}, "nothing parked"
