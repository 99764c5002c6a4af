"""A running Dumas (four services as processes) with one account per persona, for the security
tests in tests/security/: sign in through routing's API (the session cookie is shared by every
service), submit complaints through intake, wait until routing has them, drive the inbox API.

    from support.security_world import world  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import ast
import re
import secrets
import sys
from pathlib import Path

import pytest
import requests
from e2e.harness import make_services  # noqa: F401  (the fixture, used by `world`)
from sqlalchemy import create_engine, text

from services.routing.commands import add_account
from support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "proxy"))
import routes as proxy_routes  # noqa: E402  (deploy/proxy/routes.py: the proxy's route table)

HTTP_TIMEOUT = 10
PASSWORD = "sandi-uji-keamanan-panjang"
UNIT = "kua-merigi"  # where the test complaints go (Kecamatan Merigi, pilot in the seed)
OTHER_UNIT = "kua-kepahiang"
DESK_UNIT = "kankemenag-kepahiang"
MERIGI = "17.08.05"

# persona -> (username, role, unit); "anon" has no account.
PERSONAS: dict[str, tuple[str, str, str | None]] = {
    "op_same": ("sec.op.merigi", "unit_operator", UNIT),
    "op_other": ("sec.op.kepahiang", "unit_operator", OTHER_UNIT),
    "head": ("sec.kepala.merigi", "unit_head", UNIT),
    "desk": ("sec.meja", "desk_admin", None),
    "auditor": ("sec.auditor", "auditor", None),
    "ptsp": ("sec.ptsp", "ptsp_officer", None),
}
ALL = ("anon", *PERSONAS)


def bare(rule: str) -> str:
    """A werkzeug rule without converters: /lacak/<string:code> -> /lacak/<code>."""
    return re.sub(r"<\w+(?:\([^)]*\))?:", "<", rule)


def served_routes() -> set[tuple[str, str, str]]:
    """(service, method, bare rule) for every @http(method, rule) in services/<svc>/*.py: the
    source deploy/proxy/routes.py derives the proxy's table from, with the methods."""
    found = set()
    for service in proxy_routes.SERVICES:
        for path in sorted((ROOT / "services" / service).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "http"
                        and len(node.args) >= 2
                        and all(isinstance(a, ast.Constant) for a in node.args[:2])):
                    found.add((service, node.args[0].value, bare(node.args[1].value)))
    return found


class Person:
    """One persona's HTTP client: the shared session cookie and its CSRF token (none for anon)."""

    def __init__(self, name: str, cluster, cookie: str | None = None, csrf: str | None = None):
        self.name = name
        self.cluster = cluster
        self.cookie = cookie
        self.csrf = csrf
        self.http = requests.Session()
        self.http.headers["Connection"] = "close"  # idle keep-alives slow the services' stop

    def request(self, method: str, service: str, path: str, **kw) -> requests.Response:
        """One request with this persona's session cookie (plus `cookies`); nothing a response
        sets is kept, so a sign-out does not end the persona's session for later requests."""
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", HTTP_TIMEOUT)
        cookies = dict(kw.pop("cookies", None) or {})
        if self.cookie:
            cookies.setdefault("dumas_session", self.cookie)
        self.http.cookies.clear()
        try:
            return self.http.request(method, self.cluster.url(service, path), cookies=cookies,
                                     **kw)
        finally:
            self.http.cookies.clear()

    def get(self, service: str, path: str, **kw) -> requests.Response:
        return self.request("GET", service, path, **kw)

    def post(self, service: str, path: str, **kw) -> requests.Response:
        return self.request("POST", service, path, **kw)

    def act(self, complaint_id: str, action: str, text: str | None = None, **extra):
        return self.post("routing", f"/api/v1/inbox/complaints/{complaint_id}/actions",
                         json={"action": action, "text": text, **extra},
                         headers={"X-CSRF-Token": self.csrf or ""})

    def close(self) -> None:
        self.http.close()


class World:
    """The cluster, its databases and one signed-in Person per persona."""

    def __init__(self, cluster, pg_urls: dict[str, str], display_names: dict | None = None):
        self.cluster = cluster
        self.pg_urls = pg_urls
        self._engines = {s: create_engine(u, pool_size=1, max_overflow=0)
                         for s, u in pg_urls.items()}
        self._serial = 0
        names = display_names or {}
        for persona, (username, role, unit) in PERSONAS.items():
            add_account(pg_urls["routing"], username, names.get(persona, username.title()),
                        role, PASSWORD, unit)
        self.people = {"anon": Person("anon", cluster)}
        for persona, (username, _role, _unit) in PERSONAS.items():
            answer = requests.post(cluster.url("routing", "/api/v1/session"),
                                   json={"username": username, "password": PASSWORD},
                                   timeout=HTTP_TIMEOUT, headers={"Connection": "close"})
            assert answer.status_code == 200, answer.text
            self.people[persona] = Person(persona, cluster, answer.cookies["dumas_session"],
                                          answer.json()["csrf_token"])

    def __getitem__(self, persona: str) -> Person:
        return self.people[persona]

    def close(self) -> None:
        for person in self.people.values():
            person.close()
        for engine in self._engines.values():
            engine.dispose()

    # --- complaints

    def complaint_body(self, **overrides) -> dict:
        self._serial += 1
        body = {
            "category": "nikah_rujuk",
            "kecamatan_code": MERIGI,
            "description": f"Pendaftaran nikah nomor {self._serial} belum diproses dua minggu.",
            "complainant": {"name": "Warga Uji", "email": f"warga{self._serial}@contoh.id"},
        }
        body.update(overrides)
        return body

    def submit(self, **overrides) -> str:
        """A complaint through intake's API; its tracking code."""
        answer = self["anon"].post("intake", "/api/v1/complaints",
                                   json=self.complaint_body(**overrides))
        assert answer.status_code == 201, answer.text
        return answer.json()["tracking_code"]

    def routed(self, tracking_code: str, timeout: float = 30) -> dict:
        """routing's row of a complaint once routing has recorded it."""
        return wait_for(lambda: self.routing_row(tracking_code), timeout=timeout,
                        interval=0.1, message=f"{tracking_code} routed")

    def routing_row(self, tracking_code: str) -> dict | None:
        rows = self.rows("routing", "SELECT complaint_id, unit_code, status, seq FROM complaints"
                         " WHERE tracking_code = :code", code=tracking_code)
        return dict(rows[0]._mapping) if rows else None

    def routing_state(self, complaint_id: str) -> tuple:
        rows = self.rows("routing", "SELECT status, seq, unit_code FROM complaints"
                         " WHERE complaint_id = :id", id=complaint_id)
        return tuple(rows[0])

    def intake_state(self, tracking_code: str):
        """Until intake has applied routing's event: None."""
        rows = self.rows("intake", "SELECT status FROM complaints WHERE tracking_code = :c",
                         c=tracking_code)
        return rows[0][0] if rows else None

    # --- databases (read-only looks)

    def rows(self, service: str, sql: str, **params) -> list:
        with self._engines[service].connect() as conn:
            return conn.execute(text(sql), params).all()

    def scalar(self, service: str, sql: str, **params):
        with self._engines[service].connect() as conn:
            return conn.execute(text(sql), params).scalar()


def world_env(amqp_uri: str, pg_urls: dict[str, str], var_dir) -> dict[str, str]:
    env = {"AMQP_URI": amqp_uri, "DUMAS_VAR_DIR": str(var_dir),
           # many requests from 127.0.0.1 in a few seconds: the per-IP limit is not under test
           "RATE_LIMIT_IP": "100000/100000",
           "DUMAS_SESSION_SECRET": secrets.token_urlsafe(32)}
    env.update({f"{s.upper()}_DATABASE_URL": u for s, u in pg_urls.items()})
    return env


@pytest.fixture
def world_factory(amqp_uri, pg_urls, tmp_path, make_services):  # noqa: F811
    """world_factory(display_names=None) -> a started World (stopped at teardown)."""
    made: list[World] = []

    def make(display_names: dict | None = None) -> World:
        var_dir = tmp_path / "var"
        var_dir.mkdir(exist_ok=True)
        cluster = make_services(world_env(amqp_uri, pg_urls, var_dir))
        made.append(World(cluster, pg_urls, display_names))
        return made[-1]

    try:
        yield make
    finally:
        for w in made:
            w.close()


@pytest.fixture
def world(world_factory) -> World:
    return world_factory()
