"""The account store in routing, on PostgreSQL, through its RPC."""

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.routing import accounts
from services.routing.service import RoutingService

PASSWORD = "kata-sandi-panjang"


@pytest.fixture
def db(pg_urls):
    engine = create_engine(pg_urls["routing"])
    with Session(engine) as session:
        accounts.create(session, "siti", "Siti Aminah", "unit_operator", PASSWORD, "kua-merigi")
        session.commit()
        yield session
    engine.dispose()


def test_a_person_signs_in_through_routing_rpc(db, start_service, amqp_uri):
    start_service(RoutingService)
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}) as rpc:
        ok = rpc.routing.authenticate("siti", PASSWORD)
        wrong = rpc.routing.authenticate("siti", "salah")
        unknown = rpc.routing.authenticate("nobody", PASSWORD)
    assert ok == {"ok": True, "username": "siti", "display_name": "Siti Aminah",
                  "role": "unit_operator", "unit_code": "kua-merigi"}
    assert wrong == unknown == {"ok": False, "reason": "invalid"}


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(db):
    for _ in range(accounts.MAX_FAILURES):
        assert accounts.authenticate(db, "siti", "tebakan")["ok"] is False
    db.commit()
    locked = accounts.authenticate(db, "siti", PASSWORD)
    assert locked["ok"] is False and locked["reason"] == "locked"
    assert 0 < locked["retry_after"] <= accounts.LOCKOUT.total_seconds()


def test_accounts_refuse_unknown_roles_missing_units_and_short_passwords(db):
    with pytest.raises(accounts.AccountError):
        accounts.create(db, "a", "A", "boss", PASSWORD)
    with pytest.raises(accounts.AccountError):
        accounts.create(db, "b", "B", "unit_head", PASSWORD)
    with pytest.raises(accounts.AccountError):
        accounts.create(db, "c", "C", "auditor", "pendek")
    with pytest.raises(accounts.AccountError):
        accounts.create(db, "siti", "Siti", "auditor", PASSWORD)
