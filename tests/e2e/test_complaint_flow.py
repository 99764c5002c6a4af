"""The backbone issue's acceptance checks, end to end: HTTP in, real processes, outbox files out."""

import time

import pytest
from support.wait import wait_for

pytestmark = pytest.mark.e2e

PILOT_KECAMATAN = "17.08.05"  # Merigi: kua-merigi is `pilot` in units.yaml
OFF_KECAMATAN = "17.08.02"  # Ujan Mas: kua-ujan-mas is `off`
PILOT_UNIT = "kua-merigi"
DESK_UNIT = "kankemenag-kepahiang"
UNIT_EMAIL = {
    PILOT_UNIT: "kua.merigi@kemenag.example",
    DESK_UNIT: "dumas.kepahiang@kemenag.example",
}

ROUTING_DEADLINE = 2.0  # seconds from the 201 to `routed`: the acceptance criterion
POLL = 0.02
SERVICES = ("intake", "routing", "notification", "reporting")


def wait_until_routed(dumas, code: str, timeout: float = 15.0) -> dict:
    return wait_for(
        lambda: (v := dumas.track(code, unavailable_ok=True)) and v["status"] == "routed" and v,
        timeout=timeout,
        interval=POLL,
        message=f"{code} routed",
    )


def messages_about(dumas, code: str) -> list[dict]:
    return [m for m in dumas.outbox_messages() if code in m["text"]]


def wait_for_unit_and_complainant_messages(dumas, code: str, unit_email: str, email: str):
    """Both messages about `code` once they are written; asserts there is exactly one each."""
    wait_for(
        lambda: {m["to"] for m in messages_about(dumas, code)} >= {unit_email, email},
        timeout=15,
        message=f"messages about {code} to {unit_email} and {email}",
    )
    recipients = sorted(m["to"] for m in messages_about(dumas, code))
    assert recipients == sorted([unit_email, email])


def test_every_service_answers_health_with_200(dumas):
    assert {service: dumas.health(service) for service in SERVICES} == dict.fromkeys(
        SERVICES, 200
    )


def test_nikah_complaint_in_a_pilot_kecamatan_is_routed_to_its_kua_within_two_seconds(
    dumas, make_complaint
):
    response = dumas.submit(make_complaint(PILOT_KECAMATAN, "budi@example.com"))
    accepted_at = time.monotonic()
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]

    view = wait_until_routed(dumas, code)
    elapsed = time.monotonic() - accepted_at

    assert view["unit_code"] == PILOT_UNIT
    assert elapsed < ROUTING_DEADLINE, f"routed after {elapsed:.3f} s"
    print(f"\n{code} routed to {PILOT_UNIT} {elapsed * 1000:.0f} ms after the 201")
    wait_for_unit_and_complainant_messages(
        dumas, code, UNIT_EMAIL[PILOT_UNIT], "budi@example.com"
    )


def test_nikah_complaint_where_the_kua_is_off_goes_to_the_kankemenag_desk(
    dumas, make_complaint
):
    response = dumas.submit(make_complaint(OFF_KECAMATAN, "siti@example.com"))
    accepted_at = time.monotonic()
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]

    view = wait_until_routed(dumas, code)
    elapsed = time.monotonic() - accepted_at

    assert view["unit_code"] == DESK_UNIT
    print(f"\n{code} routed to {DESK_UNIT} {elapsed * 1000:.0f} ms after the 201")
    wait_for_unit_and_complainant_messages(dumas, code, UNIT_EMAIL[DESK_UNIT], "siti@example.com")


def test_reporting_counts_a_pilot_and_a_desk_complaint_with_their_four_notifications(
    dumas, make_complaint
):
    pilot = dumas.submit_accepted(make_complaint(PILOT_KECAMATAN, "budi@example.com"))
    desk = dumas.submit_accepted(make_complaint(OFF_KECAMATAN, "siti@example.com"))
    wait_until_routed(dumas, pilot)
    wait_until_routed(dumas, desk)

    stats = dumas.stats_when(
        lambda s: s["notifications"]["sent"] >= 4,
        timeout=15,
        message="reporting has seen four notifications sent",
    )

    assert stats["total"] == 2
    assert stats["by_unit"] == {PILOT_UNIT: 1, DESK_UNIT: 1}
    assert stats["by_status"] == {"routed": 2}
    assert stats["notifications"] == {"sent": 4, "failed": 0}
    assert len(dumas.outbox_messages()) == 4
