"""RabbitMQ goes away: intake keeps accepting complaints, their events wait in its outbox, and
once the broker is back every service reconnects by itself and the complaint is routed and
notified.

This stops the machine's shared RabbitMQ (`rabbitmqctl stop_app`), which disturbs any other test
run using it: run it only when no other pytest is running.
"""

import contextlib
import subprocess
import time

import pytest
import requests
from support import amqp
from support.wait import wait_for

from services.supervisor import parse_amqp_uri, tcp_reachable

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "routing", "notification", "reporting")
RECOVERY_TIMEOUT = 60
PILOT_KECAMATAN = "17.08.05"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def management_answers() -> bool:
    try:
        response = requests.get(f"{amqp.MGMT}/api/overview", auth=amqp.AUTH, timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200


@contextlib.contextmanager
def rabbitmq_stopped(amqp_uri: str):
    """The broker's app stopped inside the block; always started again, and answering, after."""
    broker = parse_amqp_uri(amqp_uri)
    try:
        rabbitmqctl("stop_app")
        wait_for(
            lambda: not tcp_reachable(broker.host, broker.port, timeout=0.5),
            timeout=30,
            message="RabbitMQ stopped listening",
        )
        yield
    finally:
        rabbitmqctl("start_app")
        wait_for(
            lambda: tcp_reachable(broker.host, broker.port, timeout=0.5),
            timeout=60,
            interval=0.2,
            message=f"RabbitMQ accepts connections on {broker}",
        )
        wait_for(management_answers, timeout=60, interval=0.2, message="management API")


def complaint_received_in_outbox(dumas, code: str) -> list:
    """published_at of each `complaint_received` row of intake's outbox for this complaint."""
    rows = dumas.rows(
        "intake",
        "SELECT o.published_at FROM outbox o JOIN complaints c ON c.id = o.correlation_id"
        " WHERE c.tracking_code = :code AND o.routing_key = 'complaint_received'",
        code=code,
    )
    return [published_at for (published_at,) in rows]


def test_complaint_accepted_while_rabbitmq_is_down_is_routed_and_notified_once_it_is_back(
    dumas, amqp_uri, make_complaint
):
    with rabbitmq_stopped(amqp_uri):
        response = dumas.submit(make_complaint(PILOT_KECAMATAN, "budi@example.com"))
        assert response.status_code == 201, response.text
        code = response.json()["tracking_code"]

        assert complaint_received_in_outbox(dumas, code) == [None]
        assert dumas.track(code)["status"] == "received"
    broker_back_at = time.monotonic()

    view = wait_for(
        lambda: (v := dumas.track(code, unavailable_ok=True)) and v["status"] == "routed" and v,
        timeout=RECOVERY_TIMEOUT,
        interval=0.2,
        message=f"{code} routed after the broker came back",
    )
    routed_after = time.monotonic() - broker_back_at
    assert view["unit_code"] == "kua-merigi"
    [published_at] = complaint_received_in_outbox(dumas, code)
    assert published_at is not None

    wait_for(
        lambda: sorted(m["to"] for m in dumas.outbox_messages() if code in m["text"])
        == ["budi@example.com", "kua.merigi@kemenag.example"],
        timeout=RECOVERY_TIMEOUT,
        interval=0.2,
        message=f"the unit and the complainant told about {code}",
    )
    stats = dumas.stats_when(
        lambda s: s["notifications"]["sent"] >= 2,
        timeout=RECOVERY_TIMEOUT,
        message="reporting has seen both notifications",
    )
    assert stats["notifications"] == {"sent": 2, "failed": 0}
    wait_for(
        lambda: all(dumas.health(service) == 200 for service in SERVICES),
        timeout=RECOVERY_TIMEOUT,
        interval=0.2,
        message="every service healthy again",
    )
    print(
        f"\n{code} routed {routed_after:.1f} s and fully notified "
        f"{time.monotonic() - broker_back_at:.1f} s after RabbitMQ answered again"
    )
