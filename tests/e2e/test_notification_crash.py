"""notification dies by SIGKILL after a provider has the message and before the delivery is
recorded as sent. What does the person receive? (docs/notifications.md, "Twice, and why")"""

import pytest
from sqlalchemy import create_engine, text
from support.notification_standins import SMS_PATH, HttpStandIn
from support.wait import wait_for

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token"


@pytest.fixture
def gateway(tmp_path):
    with HttpStandIn(tmp_path, token=TOKEN) as server:
        yield server


def test_killed_between_send_and_acknowledge_the_person_gets_at_most_one_duplicate(
    service_env, make_services, gateway, pg_urls
):
    env = {
        **service_env,
        "NOTIFICATION_PROVIDERS": "complainant.sms=sms_http,*=file",
        "SMS_GATEWAY_URL": gateway.sms_url,
        "SMS_GATEWAY_TOKEN": TOKEN,
        "NOTIFICATION_PROVIDER_TIMEOUT": "10",
        "NOTIFICATION_LEASE_SECONDS": "31",
    }
    cluster = make_services(env)
    # The gateway takes the SMS and does not answer until the test says so.
    gateway.script([{"hang": True, "hang_seconds": 60}], path=SMS_PATH)
    import requests

    response = requests.post(cluster.url("intake", "/api/v1/complaints"), timeout=10, json={
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": "Pendaftaran nikah kami sudah dua minggu belum diproses, mohon dibantu.",
        "complainant": {"name": "Budi Santoso", "phone": "0812-3456-7890"},
    })
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]

    wait_for(lambda: gateway.requests(SMS_PATH), timeout=30, message="the SMS reached the gateway")
    cluster.kill("notification")  # the SMS is with the gateway; the row still says pending
    gateway.release()  # the gateway carries on and delivers it to the phone
    wait_for(lambda: len(gateway.delivered(SMS_PATH)) == 1)

    cluster.restart("notification")
    # After the lease (31 s) expires the sweep sends the delivery again: it cannot know that
    # the gateway delivered the first copy.
    wait_for(lambda: len(gateway.delivered(SMS_PATH)) == 2, timeout=60, interval=0.5,
             message="the SMS sent again after the restart")
    delivered = gateway.delivered(SMS_PATH)
    assert all(code in d["body"]["message"] for d in delivered)
    assert delivered[0]["body"]["reference"] == delivered[1]["body"]["reference"]
    assert len(gateway.requests(SMS_PATH)) == 2
    # and never a third time: the second attempt is recorded as sent
    engine = create_engine(pg_urls["notification"])
    with engine.connect() as conn:
        row = wait_for(lambda: conn.execute(text(
            "SELECT status, attempts FROM deliveries WHERE channel = 'sms'")).one()._tuple()
            if conn.execute(text("SELECT count(*) FROM deliveries WHERE channel = 'sms' "
                                 "AND status = 'sent'")).scalar() else None)
    engine.dispose()
    assert row == ("sent", 2)
