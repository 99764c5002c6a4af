"""End-to-end fixtures: the four services as real processes on a private vhost and fresh
PostgreSQL databases, and a small driver speaking to them only through their public interfaces
(HTTP, the file outbox, the broker's queues) plus read-only looks into their databases."""

import json
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from e2e.harness import make_services  # noqa: F401  (the fixture)
from sqlalchemy import create_engine, text
from support import amqp
from support.wait import TimedOut, wait_for

from services.routing.commands import add_account

HTTP_TIMEOUT = 10
AUDITOR = "e2e-auditor"


@pytest.fixture
def var_dir(tmp_path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def service_env(amqp_uri, pg_urls, var_dir) -> dict[str, str]:
    """The services' environment: private vhost, one fresh database each, private var dir."""
    env = {
        "AMQP_URI": amqp_uri,
        "DUMAS_VAR_DIR": str(var_dir),
        # The driver polls tracking pages from one address far faster than a citizen would;
        # the lookup limits themselves are proven in tests/security/test_throttling.py.
        "RATE_LIMIT_LOOKUP": "100000/100000",
        "TRACKING_MISSES_PER_IP": "100000/60",
    }
    env.update({f"{service.upper()}_DATABASE_URL": url for service, url in pg_urls.items()})
    return env


@pytest.fixture
def cluster(service_env, make_services):  # noqa: F811  (make_services is the harness fixture)
    # service_env comes first so that it is torn down last: the services stop before their
    # vhost and databases are deleted (the other way round, deleting a vhost with live
    # connections takes ~15 s and the services log broker errors while they stop).
    return make_services(service_env)


@pytest.fixture
def dumas(cluster, amqp_uri, vhost, pg_urls, var_dir):
    driver = Dumas(cluster, amqp_uri, vhost, pg_urls, var_dir / "outbox")
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def make_complaint():
    """Factory: a valid nikah_rujuk complaint from `kecamatan_code` with an e-mail contact."""

    def make(kecamatan_code: str, email: str, **overrides) -> dict:
        body = {
            "category": "nikah_rujuk",
            "kecamatan_code": kecamatan_code,
            "description": "Pendaftaran nikah kami sudah dua minggu belum diproses, mohon dibantu.",
            "complainant": {"name": "Budi Santoso", "email": email},
        }
        body.update(overrides)
        return body

    return make


class Dumas:
    """Drives a running cluster and reads what it recorded."""

    def __init__(self, cluster, amqp_uri: str, vhost: str, pg_urls: dict, outbox_dir: Path):
        self.cluster = cluster
        self.amqp_uri = amqp_uri
        self.vhost = vhost
        self.outbox_dir = outbox_dir
        self.pg_urls = pg_urls
        self.http = requests.Session()
        self._signed_in = False
        self._engines = {
            service: create_engine(url, pool_size=1, max_overflow=0)
            for service, url in pg_urls.items()
        }

    def close(self) -> None:
        self.http.close()
        for engine in self._engines.values():
            engine.dispose()

    # --- HTTP

    def submit(self, body: dict) -> requests.Response:
        return self.http.post(
            self.cluster.url("intake", "/api/v1/complaints"), json=body, timeout=HTTP_TIMEOUT
        )

    def submit_accepted(self, body: dict) -> str:
        """POST a complaint that must be accepted; its tracking code."""
        response = self.submit(body)
        assert response.status_code == 201, response.text
        return response.json()["tracking_code"]

    def track(self, code: str, *, unavailable_ok: bool = False) -> dict | None:
        """The public status of `code`. unavailable_ok: a 503 ("try again shortly", e.g. the
        machine's PostgreSQL out of connections) gives None, for use inside a bounded poll."""
        response = self.http.get(
            self.cluster.url("intake", f"/api/v1/complaints/{code}"), timeout=HTTP_TIMEOUT
        )
        return _answer(response, unavailable_ok)

    def sign_in_as_auditor(self) -> None:
        """An `auditor` account in routing's store, signed in; the session cookie is shared by
        every service (anonymous /api/v1/stats is the public view: no units, no notifications)."""
        password = secrets.token_urlsafe(24)
        add_account(self.pg_urls["routing"], AUDITOR, "Auditor Uji E2E", "auditor", password)

        def sign_in():
            response = self.http.post(
                self.cluster.url("routing", "/api/v1/session"),
                json={"username": AUDITOR, "password": password},
                timeout=HTTP_TIMEOUT,
            )
            return _answer(response, unavailable_ok=True)

        wait_for(sign_in, timeout=15, interval=0.2, message="auditor signed in")
        self._signed_in = True

    def stats(self, *, unavailable_ok: bool = False) -> dict | None:
        """reporting's /api/v1/stats as staff (signing in the first time); see `track`."""
        if not self._signed_in:
            self.sign_in_as_auditor()
        response = self.http.get(
            self.cluster.url("reporting", "/api/v1/stats"), timeout=HTTP_TIMEOUT
        )
        return _answer(response, unavailable_ok)

    def stats_when(self, predicate, *, timeout: float, message: str) -> dict:
        """Poll the staff stats until `predicate(stats)`; on timeout, say what they were."""
        seen: list[dict] = []

        def ready():
            stats = self.stats(unavailable_ok=True)
            if stats is None:
                return None
            seen.append(stats)
            return predicate(stats) and stats

        try:
            return wait_for(ready, timeout=timeout, interval=0.2, message=message)
        except TimedOut as exc:
            last = seen[-1] if seen else {}
            summary = {k: last.get(k) for k in ("total", "by_status", "notifications")}
            raise TimedOut(f"{exc}; last stats: {summary}") from None

    def health(self, service: str) -> int:
        return self.http.get(self.cluster.url(service, "/health"), timeout=HTTP_TIMEOUT).status_code

    # --- databases (read-only)

    def scalar(self, service: str, sql: str, **params):
        with self._engines[service].connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, service: str, sql: str, **params) -> list:
        with self._engines[service].connect() as conn:
            return conn.execute(text(sql), params).all()

    def routed_in_intake(self) -> int:
        return self.scalar("intake", "SELECT count(*) FROM complaints WHERE status = 'routed'")

    def decisions(self) -> int:
        return self.scalar("routing", "SELECT count(*) FROM decisions")

    # --- the file outbox of notification

    def outbox_messages(self) -> list[dict]:
        if not self.outbox_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.outbox_dir.glob("*.json"))]

    def outbox_files(self) -> int:
        return len(list(self.outbox_dir.glob("*.json"))) if self.outbox_dir.exists() else 0

    # --- the broker

    def queues(self) -> dict[str, dict]:
        """Every queue of the test's vhost, by name, as the management API lists it."""
        response = requests.get(
            f"{amqp.MGMT}/api/queues/{quote(self.vhost, safe='')}",
            auth=amqp.AUTH,
            timeout=HTTP_TIMEOUT,
        )
        response.raise_for_status()
        return {q["name"]: q for q in response.json()}

    def queue_depths(self) -> dict[str, int]:
        """Messages ready in each queue now (a passive declare is exact, unlike the
        management API's sampled counters)."""
        return {name: amqp.queue_depth(self.amqp_uri, name) for name in self.queues()}

    def messages_held(self) -> dict[str, int]:
        """Queues holding messages, ready (exact) or unacknowledged (management API sample)."""
        held = {
            name: q.get("messages_unacknowledged", 0)
            for name, q in self.queues().items()
            if q.get("messages_unacknowledged", 0)
        }
        for name, ready in self.queue_depths().items():
            if ready:
                held[name] = held.get(name, 0) + ready
        return held


def _answer(response: requests.Response, unavailable_ok: bool) -> dict | None:
    if unavailable_ok and response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    return response.json()
