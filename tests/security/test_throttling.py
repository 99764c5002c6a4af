"""Throttling against guessing, shown through HTTP on real containers (RabbitMQ, PostgreSQL).

Passwords, at every sign-in (routing's inbox page and JSON API, intake's PTSP desk, reporting):
- per account: 5 wrong passwords lock the account (routing's account store), after which every
  attempt, even with the right password, is 429 with Retry-After;
- per client address: `LOGIN_FAILURES_PER_IP` failures (here a small number), then every attempt
  from that address is 429 with Retry-After;
- `dumas_login_throttled_total{service, scope}` counts the refusals.
Tracking codes, at intake's lookups (API, pages, Open311): a rate per address and few unknown
codes per address, then 429 with Retry-After.
"""

import re
import secrets

import pytest
import requests
from support.intake_channels import intake_config

from services.intake.service import IntakeService
from services.reporting.service import ReportingService
from services.routing.commands import add_account
from services.routing.service import RoutingService

PASSWORD = "sandi-uji-throttling-panjang"
TOKEN = secrets.token_urlsafe(24)  # a double-submit token: same value in cookie and form


def throttled_count(service, name: str, scope: str) -> float:
    text = service.get("/metrics").text
    match = re.search(
        rf'^dumas_login_throttled_total\{{scope="{scope}",service="{name}"\}} (\S+)$', text,
        re.M)
    return float(match.group(1)) if match else 0.0


def assert_429(response, *, retry_max: int, text: str = "Terlalu banyak percobaan masuk"):
    assert response.status_code == 429, response.text[:300]
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= retry_max
    assert text in response.text
    return retry


def start_routing(start_service, pg_urls, ip_limit: str):
    add_account(pg_urls["routing"], "op.merigi", "Operator Merigi", "unit_operator", PASSWORD,
                "kua-merigi")
    add_account(pg_urls["routing"], "meja", "Admin Meja", "desk_admin", PASSWORD)
    service = start_service(RoutingService, LOGIN_FAILURES_PER_IP=ip_limit)
    service.http.headers["Connection"] = "close"
    return service


@pytest.fixture
def routing(start_service, pg_urls):
    """routing with two accounts and a per-address allowance out of the way (50 failures)."""
    return start_routing(start_service, pg_urls, "50/600")


@pytest.fixture
def routing_strict(start_service, pg_urls):
    """routing with two accounts and a per-address allowance of 4 failures per 10 minutes."""
    return start_routing(start_service, pg_urls, "4/600")


def api_sign_in(routing, username, password):
    return routing.post("/api/v1/session", json={"username": username, "password": password})


def page_sign_in(routing, username, password):
    return requests.post(
        routing.url("/inbox/masuk"), timeout=10, allow_redirects=False,
        cookies={"dumas_inbox_login": TOKEN}, headers={"Connection": "close"},
        data={"username": username, "password": password, "csrf_token": TOKEN})


# -- per account ----------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_with_429_and_retry_after(routing):
    before = throttled_count(routing, "routing", "account")

    wrong = [api_sign_in(routing, "op.merigi", f"salah-{n}").status_code for n in range(5)]
    locked = api_sign_in(routing, "op.merigi", PASSWORD)  # the right password, too late

    assert wrong == [401] * 5
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_attempts"
    assert "Terlalu banyak percobaan masuk" in locked.json()["error"]["message"]
    assert 60 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert throttled_count(routing, "routing", "account") == before + 1
    # the lock is the account's, not the address's: another account still signs in
    assert api_sign_in(routing, "meja", PASSWORD).status_code == 200


def test_a_locked_account_is_refused_on_the_inbox_page_too(routing):
    assert [page_sign_in(routing, "meja", f"salah-{n}").status_code for n in range(5)] == [
        401] * 5

    refused = page_sign_in(routing, "meja", PASSWORD)

    assert_429(refused, retry_max=15 * 60)
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "dumas_session" not in refused.cookies


# -- per client address ---------------------------------------------------------------------------


def test_many_failures_from_one_address_refuse_even_a_right_password(routing_strict):
    routing = routing_strict
    before = throttled_count(routing, "routing", "ip")

    # four failures over four accounts (none gets locked): the address's allowance is spent
    answers = [api_sign_in(routing, name, "salah").status_code
               for name in ("tidak.ada.1", "tidak.ada.2", "op.merigi", "meja")]
    refused = api_sign_in(routing, "meja", PASSWORD)

    assert answers == [401] * 4
    assert_429(refused, retry_max=600)
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert "dumas_session" not in refused.cookies
    assert throttled_count(routing, "routing", "ip") == before + 1


def test_successful_sign_ins_do_not_spend_the_address_allowance(routing_strict):
    routing = routing_strict
    for _ in range(10):
        assert api_sign_in(routing, "meja", PASSWORD).status_code == 200


def test_the_ptsp_desk_and_reporting_sign_ins_are_throttled_per_address(start_service,
                                                                         pg_urls):
    add_account(pg_urls["routing"], "ptsp", "Petugas PTSP", "ptsp_officer", PASSWORD)
    start_service(RoutingService)
    intake = start_service(IntakeService, **intake_config(), LOGIN_FAILURES_PER_IP="2/600")
    reporting = start_service(ReportingService, LOGIN_FAILURES_PER_IP="2/600")
    desk = {"url": intake.url("/ptsp/masuk"), "cookies": {"dumas_form": TOKEN},
            "field": "csrf", "service": intake, "name": "intake"}
    report = {"url": reporting.url("/masuk"), "cookies": {"dumas_login_csrf": TOKEN},
              "field": "csrf_token", "service": reporting, "name": "reporting"}

    for target in (desk, report):
        before = throttled_count(target["service"], target["name"], "ip")

        def attempt(password, target=target):
            return requests.post(
                target["url"], timeout=10, allow_redirects=False, cookies=target["cookies"],
                headers={"Connection": "close"},
                data={"username": "ptsp", "password": password, target["field"]: TOKEN})

        assert [attempt("salah").status_code for _ in range(2)] == [401, 401]
        refused = attempt(PASSWORD)

        assert_429(refused, retry_max=600)
        assert "dumas_session" not in refused.cookies
        assert throttled_count(target["service"], target["name"], "ip") == before + 1


# -- tracking-code lookups ------------------------------------------------------------------------


@pytest.fixture
def intake(start_service):
    service = start_service(IntakeService, **intake_config(), TRACKING_MISSES_PER_IP="3/600",
                            RATE_LIMIT_LOOKUP="8/6")
    service.http.headers["Connection"] = "close"
    return service


def submit(intake) -> str:
    response = intake.post("/api/v1/complaints", json={
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": "Pendaftaran nikah sudah dua minggu belum diproses petugas KUA.",
        "complainant": {"email": "warga@contoh.id"}})
    assert response.status_code == 201, response.text
    return response.json()["tracking_code"]


def test_guessing_tracking_codes_is_refused_with_429_after_a_few_misses(intake):
    code = submit(intake)
    guesses = ["DMS-AAAA-BBBB-CCCC", "DMS-7KQ4-MX9T-2BH3", "tebakan"]

    misses = [intake.get(f"/api/v1/complaints/{g}").status_code for g in guesses]
    refused = intake.get(f"/api/v1/complaints/{code}")  # even a real code, from this address
    page = intake.get("/lacak", params={"kode": code})
    open311 = intake.get(f"/open311/v2/requests/{code}.json")

    assert misses == [404, 404, 404]
    assert_429(refused, retry_max=600, text="Terlalu banyak kode pelacakan")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert_429(page, retry_max=600, text="Terlalu banyak kode pelacakan")
    assert page.headers["Content-Type"].startswith("text/html")
    assert_429(open311, retry_max=600, text="Terlalu banyak kode pelacakan")
    assert open311.json()[0]["code"] == 429


def test_known_codes_are_looked_up_at_a_bounded_rate(intake):
    code = submit(intake)

    answers = [intake.get(f"/api/v1/complaints/{code}").status_code for _ in range(8)]
    refused = intake.get(f"/lacak/{code}")

    assert answers == [200] * 8  # following one's own complaint is never a "miss"
    assert_429(refused, retry_max=60, text="Terlalu banyak permintaan")
    assert refused.headers["Content-Type"].startswith("text/html")
