"""intake's workers are shared by HTTP, the event consumers and the get_contact RPC; HTTP may
hold at most HTTP_MAX_WORKERS of them, so a busy form never starves the RPC (issue 8)."""

import threading
import uuid

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from support.wait import wait_for

from services.intake.service import IntakeService

BODY = {
    "category": "nikah_rujuk",
    "kecamatan_code": "17.08.05",
    "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
    "complainant": {"name": "Budi", "email": "budi@contoh.id"},
}


def sample(name):
    return REGISTRY.get_sample_value(name, {"service": "intake"}) or 0.0


@pytest.fixture
def intake(start_service):
    return start_service(IntakeService, max_workers=4, HTTP_MAX_WORKERS=2)


@pytest.fixture
def idempotency_locked(pg_urls):
    """While held, every read of intake's idempotency table waits (a request with an
    Idempotency-Key keeps its worker busy); released by calling it."""
    engine = create_engine(pg_urls["intake"])
    conn = engine.connect()
    trans = conn.begin()
    conn.execute(text("LOCK TABLE idempotency IN ACCESS EXCLUSIVE MODE"))
    released = []

    def release():
        if not released:
            trans.rollback()
            released.append(True)

    yield release
    release()
    conn.close()
    engine.dispose()


def test_the_contact_rpc_is_answered_while_http_holds_its_share_of_the_workers(
    intake, idempotency_locked, amqp_uri
):
    waits_before = sample("dumas_http_slot_waits_total")

    answers = []

    def post(i):
        response = requests.post(  # a connection of its own per request
            intake.url("/api/v1/complaints"),
            json={**BODY, "complainant": {"name": "Budi", "email": f"budi{i}@contoh.id"}},
            headers={"Idempotency-Key": f"blocked-{i}-{uuid.uuid4()}"},
            timeout=30,
        )
        answers.append(response.status_code)

    posts = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for thread in posts:
        thread.start()
    # All four arrived: each holds a worker (waiting for the lock) or waits for an HTTP slot.
    wait_for(lambda: sample("dumas_http_requests_in_workers")
             + sample("dumas_http_slot_waits_total") - waits_before == 4,
             timeout=10, message="four requests in workers or waiting for a slot")

    # Two of the four workers are still free: the RPC is answered now, not after the form.
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=5) as rpc:
        assert rpc.intake.get_contact(str(uuid.uuid4())) is None
    assert sample("dumas_http_requests_in_workers") == 2

    idempotency_locked()
    for thread in posts:
        thread.join(30)
    assert answers == [201, 201, 201, 201]
    assert sample("dumas_http_requests_in_workers") == 0
