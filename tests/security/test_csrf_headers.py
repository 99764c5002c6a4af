"""CSRF on every form, security headers on every page, cookie flags (HttpOnly, SameSite, Secure
behind TLS), against the four services running as processes.

The POST routes are read from the services' @http entrypoints (`served_routes`); each must be
classified in CSRF_KIND, so a new POST route without a decision fails here.
"""

import pytest
from support.security_world import (
    PASSWORD,
    PERSONAS,
    served_routes,
)

pytestmark = pytest.mark.e2e

# How each POST route is protected against cross-site requests.
#   form    a browser form: a token in the body (per-session, or double-submit cookie before
#           sign-in); without it or with a wrong one: 403 and nothing changes
#   header  a JSON API write: the session's token in X-CSRF-Token (a custom header a cross-site
#           page cannot send without CORS, which no service grants)
#   json    a JSON-only sign-in: a cross-site form cannot send application/json (415)
#   none    acts on no ambient credential (no cookie is read): partner API key, Meta signature,
#           or a public submission anyone may make
CSRF_KIND = {
    ("intake", "/"): "form",
    ("intake", "/lacak/<code>/<action>"): "form",
    ("intake", "/ptsp/masuk"): "form",
    ("intake", "/ptsp/keluar"): "form",
    ("intake", "/ptsp"): "form",
    ("intake", "/api/v1/complaints"): "none",
    ("intake", "/webhooks/whatsapp"): "none",
    ("intake", "/open311/v2/requests.json"): "none",
    ("routing", "/inbox/masuk"): "form",
    ("routing", "/inbox/keluar"): "form",
    ("routing", "/inbox/pengaduan/<complaint_id>/tindakan"): "form",
    ("routing", "/inbox/unit/<unit_code>/tahap"): "form",
    ("routing", "/api/v1/session"): "json",
    ("routing", "/api/v1/inbox/complaints/<complaint_id>/actions"): "header",
    ("routing", "/api/v1/units/<unit_code>/stage"): "header",
    ("reporting", "/masuk"): "form",
    ("reporting", "/keluar"): "form",
}
BAD_TOKENS = {"missing": None, "wrong": "x" * 32, "non-ascii": "\u00e9" * 32}
STAGE_UNIT = "kua-tebat-karai"


def test_every_post_route_has_a_csrf_decision():
    posts = {(service, rule) for service, method, rule in served_routes() if method == "POST"}
    assert posts == set(CSRF_KIND)


def _form_posts(world, code: str, cid: str):
    """(label, persona, service, path, form fields, cookies) for every `form` route, with the
    token field left out; the test adds a missing, wrong or non-ASCII token."""
    login = {"username": PERSONAS["desk"][0], "password": PASSWORD}
    complaint = {"category": "nikah_rujuk", "kecamatan_code": "17.08.05",
                 "description": "Pengaduan palsu dari situs lain, tidak boleh tersimpan.",
                 "confidentiality": "anonymous"}
    form_cookie = {"dumas_form": "f" * 32}
    return [
        ("public form", "anon", "intake", "/", "csrf", complaint, form_cookie),
        ("tracking answer", "anon", "intake", f"/lacak/{code}/jawab", "csrf",
         {"text": "Keterangan palsu dari situs lain."}, form_cookie),
        ("PTSP sign-in", "anon", "intake", "/ptsp/masuk", "csrf", login, form_cookie),
        ("PTSP sign-out", "ptsp", "intake", "/ptsp/keluar", "csrf", {}, {}),
        ("PTSP form", "ptsp", "intake", "/ptsp", "csrf",
         {**complaint, "confidentiality": "public", "name": "Warga", "phone": "081299990000"},
         {}),
        ("inbox sign-in", "anon", "routing", "/inbox/masuk", "csrf_token", login,
         {"dumas_inbox_login": "l" * 32}),
        ("inbox sign-out", "op_same", "routing", "/inbox/keluar", "csrf_token", {}, {}),
        ("inbox action", "op_same", "routing", f"/inbox/pengaduan/{cid}/tindakan",
         "csrf_token", {"action": "acknowledge"}, {}),
        ("unit stage", "desk", "routing", f"/inbox/unit/{STAGE_UNIT}/tahap", "csrf_token",
         {"stage": "pilot", "reason": "dari situs lain"}, {}),
        ("reporting sign-in", "anon", "reporting", "/masuk", "csrf_token", login,
         {"dumas_login_csrf": "r" * 32}),
        ("reporting sign-out", "desk", "reporting", "/keluar", "csrf_token", {}, {}),
    ]


def _snapshot(world, code: str, cid: str) -> dict:
    return {
        "intake complaints": world.scalar("intake", "SELECT count(*) FROM complaints"),
        "intake messages": world.scalar("intake", "SELECT count(*) FROM complaint_messages"),
        "routing complaint": world.routing_state(cid),
        "stage": world.scalar("routing", "SELECT stage FROM units WHERE code = :c",
                              c=STAGE_UNIT),
        "audit entries": world.scalar("routing", "SELECT count(*) FROM audit_log"),
    }


def _set_cookies(response) -> list[str]:
    return response.raw.headers.getlist("Set-Cookie")


def test_a_form_post_without_or_with_a_wrong_token_is_refused_with_403_and_changes_nothing(
        world):
    code = world.submit()
    cid = world.routed(code)["complaint_id"]
    before = _snapshot(world, code, cid)
    posts = _form_posts(world, code, cid)
    refused = []
    for label, persona, service, path, field, fields, cookies in posts:
        for bad, token in BAD_TOKENS.items():
            data = dict(fields)
            if token is not None:
                data[field] = token
            response = world[persona].post(service, path, data=data, cookies=cookies)
            got = (response.status_code,
                   [c for c in _set_cookies(response) if c.startswith("dumas_session=")])
            if got != (403, []):
                refused.append(f"{label} with a {bad} token: {got}")
            assert "text/html" in response.headers["Content-Type"], (label, bad)
            _assert_security_headers(response, f"{label} ({bad} token)")
    assert not refused, "forms that did not refuse a bad token with 403:\n" + "\n".join(refused)
    assert _snapshot(world, code, cid) == before

    # every `form` route of the table was tried
    tried = {(p[2], p[3].replace(code, "<code>").replace(cid, "<complaint_id>")
              .replace(STAGE_UNIT, "<unit_code>").replace("/jawab", "/<action>"))
             for p in posts}
    assert tried == {k for k, kind in CSRF_KIND.items() if kind == "form"}


def test_api_writes_need_the_csrf_header_and_sign_in_needs_json(world):
    code = world.submit()
    cid = world.routed(code)["complaint_id"]
    before = _snapshot(world, code, cid)
    desk = world["desk"]
    for bad, token in BAD_TOKENS.items():
        headers = {} if token is None else {"X-CSRF-Token": token.encode("utf-8")}
        for path, body in ((f"/api/v1/inbox/complaints/{cid}/actions", {"action": "close",
                                                                         "text": "x"}),
                           (f"/api/v1/units/{STAGE_UNIT}/stage", {"stage": "pilot"})):
            response = desk.post("routing", path, json=body, headers=headers)
            assert (response.status_code, response.json()["error"]["code"]) == (
                403, "csrf_failed"), (path, bad)
    # a cross-site page can send form or text bodies, or one without a type (fetch of a Blob,
    # mode no-cors) without a preflight: sign-in refuses them all
    for content_type in ("application/x-www-form-urlencoded", "text/plain",
                         "multipart/form-data; boundary=x", None):
        response = world["anon"].post(
            "routing", "/api/v1/session",
            headers={} if content_type is None else {"Content-Type": content_type},
            data=f'{{"username": "{PERSONAS["desk"][0]}", "password": "{PASSWORD}"}}')
        assert "Content-Type" not in response.request.headers or content_type is not None
        assert (response.status_code, response.json()["error"]["code"]) == (
            415, "unsupported_media_type"), content_type
        assert not _set_cookies(response)
    assert _snapshot(world, code, cid) == before


def _assert_security_headers(response, label: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (label, csp)
    assert "script-src" in directives and "'unsafe-inline'" not in csp, (label, csp)
    assert directives.get("object-src") == "object-src 'none'", (label, csp)
    assert headers.get("X-Content-Type-Options") == "nosniff", label
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer",
                                              "strict-origin-when-cross-origin"), label


def test_every_html_response_carries_the_security_headers(world):
    code = world.submit()
    cid = world.routed(code)["complaint_id"]
    values = {"<code>": code, "<complaint_id>": cid, "<unit_code>": STAGE_UNIT,
              "<action>": "jawab", "<request_id>": code, "<sha256>": "0" * 64,
              "<name>": "x.css"}
    checked: dict[str, int] = {}
    gets = sorted((s, r) for s, m, r in served_routes() if m == "GET")
    for persona in ("anon", "head", "desk", "ptsp", "op_other"):
        for service, rule in gets:
            path = rule
            for key, value in values.items():
                path = path.replace(key, value)
            # also every page's refusal or not-found answer
            for variant in (path, path + "?unit=kua-kepahiang&from=x", "/tidak-ada" + path):
                response = world[persona].get(service, variant)
                assert response.status_code < 500, (service, variant, persona)
                if "text/html" in response.headers.get("Content-Type", ""):
                    _assert_security_headers(response, f"{service} {variant} as {persona}")
                    checked[service] = checked.get(service, 0) + 1
    # pages of every service with pages were looked at (intake, routing, reporting)
    assert all(checked.get(s, 0) >= 5 for s in ("intake", "routing", "reporting")), checked


COOKIE_SOURCES = [
    # (label, service, method, path, body builder) -> the response sets these cookies
    ("inbox sign-in form", "routing", "GET", "/inbox/masuk", None),
    ("public form", "intake", "GET", "/", None),
    ("PTSP sign-in form", "intake", "GET", "/ptsp/masuk", None),
    ("reporting sign-in form", "reporting", "GET", "/masuk", None),
    ("API sign-in", "routing", "POST", "/api/v1/session", "json"),
    ("inbox sign-in", "routing", "POST", "/inbox/masuk", "form"),
    ("PTSP sign-in", "intake", "POST", "/ptsp/masuk", "form"),
    ("reporting sign-in", "reporting", "POST", "/masuk", "form"),
]


def _cookies_from(world, service, method, path, body, headers) -> list[str]:
    anon = world["anon"]
    username = PERSONAS["desk"][0]
    kw: dict = {"headers": headers}
    if body == "json":
        kw["json"] = {"username": username, "password": PASSWORD}
    elif body == "form":
        field, cookie = {"intake": ("csrf", "dumas_form"),
                         "routing": ("csrf_token", "dumas_inbox_login"),
                         "reporting": ("csrf_token", "dumas_login_csrf")}[service]
        kw["data"] = {field: "c" * 32, "username": username, "password": PASSWORD}
        kw["cookies"] = {cookie: "c" * 32}
    response = anon.request(method, service, path, **kw)
    assert response.status_code in (200, 303), (path, response.status_code)
    # a deletion (empty value, expired) protects nothing and is left out
    return [c for c in _set_cookies(response) if c.split(";", 1)[0].split("=", 1)[1]]


def _attributes(cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in cookie.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


def test_cookies_are_httponly_samesite_and_secure_behind_tls(world):
    seen_session = 0
    for label, service, method, path, body in COOKIE_SOURCES:
        plain = _cookies_from(world, service, method, path, body, {})
        tls = _cookies_from(world, service, method, path, body, {"X-Forwarded-Proto": "https"})
        assert plain and len(plain) == len(tls), (label, plain, tls)
        for cookie in plain:
            attrs = _attributes(cookie)
            assert "httponly" in attrs, (label, cookie)
            assert attrs.get("samesite") in ("Lax", "Strict"), (label, cookie)
            assert "secure" not in attrs, (label, cookie)  # plain HTTP (development)
        for cookie in tls:
            attrs = _attributes(cookie)
            assert "httponly" in attrs and "secure" in attrs, (label, cookie)
            assert attrs.get("samesite") in ("Lax", "Strict"), (label, cookie)
            seen_session += cookie.startswith("dumas_session=")
    assert seen_session == 4  # the four sign-ins each set the shared session cookie
