"""Who may do what: the access-control matrix, every route and inbox action x every persona.

The tables below are the specification: each cell is the answer a persona must get. The route
list is not typed by hand: `served_routes()` reads every `@http(method, rule)` of the four
services (the same source deploy/proxy/routes.py builds the proxy from), and
`test_every_served_route_has_a_row_in_the_matrix` fails when a route is added without a row.

Personas (accounts in routing's account store; one signed session cookie serves every service):
anon (no session), op_same (unit_operator of kua-merigi, the unit the complaint is routed to),
op_other (unit_operator of kua-kepahiang), head (unit_head of kua-merigi), desk (desk_admin),
auditor, ptsp (ptsp_officer).

Table columns, in order: anon, op_sa(me), op_ot(her), head, desk, audit(or), ptsp.

Cell codes:
    200 201 401 403 404   that status
    200+ / 200-           200, and the test complaint of kua-merigi is / is not in the list
    303                   a redirect that is not to a sign-in page (the action was done)
    login                 303 to a sign-in page (nothing done)
    ok                    (action tables) the action was done: 200 (API) or 303 (form)
"""


import pytest
from support.security_world import (
    ALL,
    DESK_UNIT,
    OTHER_UNIT,
    PASSWORD,
    PERSONAS,
    UNIT,
    bare,
    proxy_routes,
    served_routes,
)

pytestmark = pytest.mark.e2e

STAGE_UNIT = "kua-tebat-karai"  # "off" in the seed; no test complaint goes there

# One table per service. Columns: method, rule (as in @http, converters left out), the request
# sent (see `_request`; "-" is a plain request), then the expected answer per persona.
ROUTES = {
    "intake": """
method rule                                    request   | anon  op_sa op_ot head  desk  audit ptsp
GET  /                                         -         | 200   200   200   200   200   200   200
POST /                                         web_form  | 303   303   303   303   303   303   303
POST /api/v1/complaints                        api_post  | 201   201   201   201   201   201   201
GET  /api/v1/complaints/<code>                 -         | 200   200   200   200   200   200   200
GET  /api/v1/categories                        -         | 200   200   200   200   200   200   200
GET  /api/openapi.json                         -         | 200   200   200   200   200   200   200
GET  /api/docs                                 -         | 200   200   200   200   200   200   200
GET  /terkirim/<code>                          -         | 200   200   200   200   200   200   200
GET  /lacak                                    -         | 200   200   200   200   200   200   200
GET  /lacak/<code>                             -         | 200   200   200   200   200   200   200
POST /lacak/<code>/<action>                    answer    | 303   303   303   303   303   303   303
GET  /lacak/<code>/lampiran/<sha256>           -         | 404   404   404   404   404   404   404
GET  /static/dumas.css                         -         | 200   200   200   200   200   200   200
GET  /ptsp/masuk                               -         | 200   200   200   200   200   200   200
POST /ptsp/masuk                               ptsp_in   | 401   403   403   403   303   403   303
POST /ptsp/keluar                              ptsp_out  | login login login login login login login
GET  /ptsp                                     -         | login login login login 200   login 200
POST /ptsp                                     ptsp_form | login login login login 303   login 303
GET  /ptsp/tanda-terima/<code>                 -         | login login login login 200   login 200
GET  /webhooks/whatsapp                        -         | 403   403   403   403   403   403   403
POST /webhooks/whatsapp                        unsigned  | 401   401   401   401   401   401   401
GET  /open311/v2/services.json                 -         | 200   200   200   200   200   200   200
POST /open311/v2/requests.json                 open311   | 201   201   201   201   201   201   201
GET  /open311/v2/requests.json                 -         | 200   200   200   200   200   200   200
GET  /open311/v2/requests/<request_id>.json    -         | 200   200   200   200   200   200   200
GET  /health                                   -         | 200   200   200   200   200   200   200
GET  /metrics                                  -         | 200   200   200   200   200   200   200
""",
    "routing": """
method rule                                    request   | anon  op_sa op_ot head  desk  audit ptsp
GET  /inbox/static/<name>                      -         | 200   200   200   200   200   200   200
GET  /inbox/masuk                              -         | 200   200   200   200   200   200   200
POST /inbox/masuk                              inbox_in  | 401   303   303   303   303   303   303
POST /inbox/keluar                             inbox_out | login login login login login login login
GET  /inbox                                    -         | login 200+  200-  200+  200+  200+  403
GET  /inbox/pengaduan/<complaint_id>           -         | login 200   404   200   200   200   403
GET  /inbox/ekspor.csv                         -         | login 200+  200-  200+  200+  200+  403
GET  /inbox/lampiran/<complaint_id>/<sha256>   -         | 404   404   404   404   404   404   404
POST /inbox/pengaduan/<complaint_id>/tindakan  (FORM_ACTIONS)
GET  /inbox/audit                              -         | login 403   403   403   200   200   403
GET  /inbox/unit                               -         | login 403   403   403   200   200   403
POST /inbox/unit/<unit_code>/tahap             stage_frm | login 403   403   403   303   403   403
POST /api/v1/session                           api_in    | 401   200   200   200   200   200   200
GET  /api/v1/inbox                             -         | 401   200+  200-  200+  200+  200+  403
GET  /api/v1/inbox                             own_unit  | 401   200+  200-  200+  200+  200+  403
GET  /api/v1/inbox/complaints/<complaint_id>   -         | 401   200   404   200   200   200   403
GET  /api/v1/inbox/export.csv                  -         | 401   200+  200-  200+  200+  200+  403
GET  /api/v1/inbox/export.csv                  own_unit  | 401   200+  200-  200+  200+  200+  403
POST /api/v1/inbox/complaints/<complaint_id>/actions  (API_ACTIONS)
GET  /api/v1/audit                             -         | 401   403   403   403   200   200   403
POST /api/v1/units/<unit_code>/stage           stage_api | 401   403   403   403   200   403   403
GET  /api/v1/units                             -         | 200   200   200   200   200   200   200
GET  /api/openapi/routing.json                 -         | 200   200   200   200   200   200   200
GET  /health                                   -         | 200   200   200   200   200   200   200
GET  /metrics                                  -         | 200   200   200   200   200   200   200
""",
    "reporting": """
method rule                                    request   | anon  op_sa op_ot head  desk  audit ptsp
GET  /                                         -         | 303   303   303   303   303   303   303
GET  /statistik                                -         | 200   200   200   200   200   200   200
GET  /statistik                                own_unit  | 403   403   403   403   403   403   403
GET  /api/v1/stats                             -         | 200   403   403   200   200   200   403
GET  /api/v1/stats                             own_unit  | 403   403   403   200   200   200   403
GET  /api/v1/stats                             othr_unit | 403   403   403   403   200   200   403
GET  /dasbor                                   -         | login 403   403   200   200   200   403
GET  /dasbor                                   othr_unit | login 403   403   403   200   200   403
GET  /masuk                                    -         | 200   200   200   200   200   200   200
POST /masuk                                    rep_in    | 401   403   403   303   303   303   403
POST /keluar                                   rep_out   | 303   303   303   303   303   303   303
GET  /laporan/ekspor.csv                       -         | 401   403   403   200   200   200   403
GET  /laporan/ekspor.csv                       othr_unit | 401   403   403   403   200   200   403
GET  /laporan/ekspor.xlsx                      -         | 401   403   403   200   200   200   403
GET  /laporan/ekspor.xlsx                      othr_unit | 401   403   403   403   200   200   403
GET  /laporan/bulanan.pdf                      -         | 401   403   403   403   200   200   403
GET  /api/openapi/reporting.json               -         | 200   200   200   200   200   200   200
GET  /static/<name>                            -         | 200   200   200   200   200   200   200
GET  /health                                   -         | 200   200   200   200   200   200   200
GET  /metrics                                  -         | 200   200   200   200   200   200   200
""",
    "notification": """
method rule                                    request   | anon  op_sa op_ot head  desk  audit ptsp
GET  /health                                   -         | 200   200   200   200   200   200   200
GET  /metrics                                  -         | 200   200   200   200   200   200   200
""",
}

# The inbox actions, on a complaint of kua-merigi in status `routed` or (prep) `acknowledged`.
# action     prep         | anon op_same op_other head desk auditor ptsp
API_ACTIONS = """
acknowledge  -            | 401  ok   404  ok   ok   403  403
start        acknowledge  | 401  ok   404  ok   ok   403  403
request_info acknowledge  | 401  ok   404  ok   ok   403  403
respond      acknowledge  | 401  ok   404  ok   ok   403  403
resolve      acknowledge  | 401  ok   404  ok   ok   403  403
note         -            | 401  ok   404  ok   ok   403  403
return       -            | 401  ok   404  ok   403  403  403
reroute      -            | 401  403  404  403  ok   403  403
close        -            | 401  403  404  403  ok   403  403
reject       -            | 401  403  404  403  ok   403  403
duplicate    -            | 401  403  404  403  ok   403  403
"""
FORM_ACTIONS = """
acknowledge  -            | login ok   404  ok   ok   403  403
start        acknowledge  | login ok   404  ok   ok   403  403
request_info acknowledge  | login ok   404  ok   ok   403  403
respond      acknowledge  | login ok   404  ok   ok   403  403
resolve      acknowledge  | login ok   404  ok   ok   403  403
note         -            | login ok   404  ok   ok   403  403
return       -            | login ok   404  ok   403  403  403
reroute      -            | login 403  404  403  ok   403  403
close        -            | login 403  404  403  ok   403  403
reject       -            | login 403  404  403  ok   403  403
duplicate    -            | login 403  404  403  ok   403  403
"""
ACTION_STATUS = {"acknowledge": "acknowledged", "start": "in_progress",
                 "request_info": "info_requested", "respond": "responded",
                 "resolve": "resolved", "note": None, "return": "routed",
                 "reroute": "routed", "close": "closed", "reject": "closed",
                 "duplicate": "closed"}


def parse_routes(tables: dict[str, str] = ROUTES) -> list[dict]:
    rows = []
    for service, table in tables.items():
        for line in table.strip().splitlines()[1:]:  # after the header
            head, _, cells = line.partition("|")
            method, rule, request = head.split()
            row = {"service": service, "method": method, "rule": rule, "request": request}
            if request.startswith("("):  # the action tables below
                row["table"] = request
            else:
                expected = cells.split()
                assert len(expected) == len(ALL), line
                row["expected"] = dict(zip(ALL, expected, strict=True))
            rows.append(row)
    return rows


def parse_actions(table: str) -> list[dict]:
    rows = []
    for line in table.strip().splitlines():
        head, _, cells = line.partition("|")
        action, prep = head.split()
        rows.append({"action": action, "prep": None if prep == "-" else prep,
                     "expected": dict(zip(ALL, cells.split(), strict=True))})
    return rows


def test_every_served_route_has_a_row_in_the_matrix():
    served = served_routes()
    in_matrix = {(r["service"], r["method"], r["rule"]) for r in parse_routes()}
    assert served - in_matrix == set(), "routes without an access-matrix row"
    assert in_matrix - served == set(), "matrix rows for routes nobody serves"
    # the same route list the reverse proxy is generated from
    assert {rule for _, _, rule in served} == {bare(r) for r in proxy_routes.http_routes()}
    actions = {r["action"] for r in parse_actions(API_ACTIONS)}
    from services.routing.domain.lifecycle import ACTIONS

    assert actions == set(ACTIONS) == {r["action"] for r in parse_actions(FORM_ACTIONS)}
    assert set(ACTION_STATUS) == set(ACTIONS)


def test_health_and_metrics_are_not_reachable_through_the_public_proxy():
    served = {rule for _, _, rule in served_routes()}
    template = proxy_routes.render(proxy_routes.http_routes())
    for internal in ("/health", "/metrics"):
        assert internal in served
        assert f"location = {internal} {{ return 404; }}" in template


# --- the requests behind the `request` column ---------------------------------------------


def _fill(rule: str, ctx: dict) -> str:
    values = {"code": ctx["code"], "action": "jawab", "complaint_id": ctx["cid"],
              "request_id": ctx["code"], "unit_code": STAGE_UNIT,
              "sha256": "0" * 64}  # evidence files: no such file and no signed link
    path = rule
    for key, value in values.items():
        path = path.replace(f"<{key}>", value)
    if "<name>" in path:
        path = path.replace("<name>", "inbox.css" if "inbox" in path else "reporting.css")
    assert "<" not in path, path
    return path


FORM_TOKEN = "t" * 32  # intake's double-submit token: any 20-64 character value, cookie = field


def _request(world, persona: str, row: dict, ctx: dict):
    person = world[persona]
    username = PERSONAS.get(persona, ("sec.tidak.ada",))[0]
    path = _fill(row["rule"], ctx)
    kind, service, method = row["request"], row["service"], row["method"]
    serial = ctx["serial"] = ctx["serial"] + 1
    kw: dict = {}
    form_cookie = {"dumas_form": FORM_TOKEN}
    if kind == "web_form":
        kw = {"cookies": form_cookie, "data": {
            "csrf": FORM_TOKEN, "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
            "description": f"Formulir web uji matriks akses nomor {serial}, belum diproses.",
            "confidentiality": "anonymous"}}
    elif kind == "api_post":
        kw = {"json": world.complaint_body(
            description=f"Pengaduan API uji matriks nomor {serial}, belum ditanggapi.")}
    elif kind == "answer":
        kw = {"cookies": form_cookie, "data": {"csrf": FORM_TOKEN, "text": f"Tambahan {serial}"}}
    elif kind == "ptsp_in":
        kw = {"cookies": form_cookie,
              "data": {"csrf": FORM_TOKEN, "username": username, "password": PASSWORD}}
    elif kind == "ptsp_form":
        kw = {"data": {"csrf": person.csrf or "", **ctx["ptsp_form"](persona)}}
    elif kind in ("ptsp_out", "inbox_out", "rep_out"):
        kw = {"data": {("csrf" if kind == "ptsp_out" else "csrf_token"): person.csrf or ""}}
    elif kind == "unsigned":
        kw = {"json": {"object": "whatsapp_business_account", "entry": []}}
    elif kind == "open311":
        kw = {"data": {"service_code": "nikah_rujuk",
                       "description": f"Open311 uji matriks akses nomor {serial}, mohon dibantu.",
                       "attribute[kecamatan_code]": "17.08.05"}}
    elif kind == "inbox_in":
        token = "l" * 32
        kw = {"cookies": {"dumas_inbox_login": token},
              "data": {"csrf_token": token, "username": username, "password": PASSWORD}}
    elif kind == "api_in":
        kw = {"json": {"username": username, "password": PASSWORD}}
    elif kind == "rep_in":
        token = "r" * 32
        kw = {"cookies": {"dumas_login_csrf": token},
              "data": {"csrf_token": token, "username": username, "password": PASSWORD}}
    elif kind == "stage_frm":
        kw = {"data": {"csrf_token": person.csrf or "", "stage": ctx["stage_for"](persona),
                       "reason": "uji matriks"}}
    elif kind == "stage_api":
        kw = {"json": {"stage": ctx["stage_for"](persona), "reason": "uji matriks"},
              "headers": {"X-CSRF-Token": person.csrf or ""}}
    elif kind == "own_unit":
        path += f"?unit={UNIT}"
    elif kind == "othr_unit":
        path += f"?unit={OTHER_UNIT}"
    else:
        assert kind == "-", kind
    if kind in ("inbox_in", "api_in", "rep_in", "ptsp_in"):
        person = world["anon"]  # signing in starts without a session
    return person.request(method, service, path, **kw)


def _answer(response, listed: tuple[str, ...] = ()) -> str:
    status = response.status_code
    if status == 303 and "masuk" in response.headers.get("Location", ""):
        return "login"
    if status == 200 and listed:
        return "200+" if any(mark in response.text for mark in listed) else "200-"
    return str(status)


def _action_answer(response, api: bool) -> str:
    answer = _answer(response)
    return "ok" if answer == ("200" if api else "303") else answer


# --- the matrix, checked against the running services ---------------------------------------


def test_the_access_matrix_holds_for_every_route_action_and_persona(world):
    code = world.submit()  # the first complaint: at the top of kua-merigi's list
    row = world.routed(code)
    assert row["unit_code"] == UNIT
    ctx = {"code": code, "cid": row["complaint_id"], "serial": 0}
    stage_before = world.scalar("routing", "SELECT stage FROM units WHERE code = :c",
                                c=STAGE_UNIT)
    # the desk asks for the stage the unit has (changes nothing); anyone else asks for a change
    ctx["stage_for"] = lambda persona: stage_before if persona == "desk" else "pilot"
    ctx["ptsp_form"] = lambda persona: {
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05", "confidentiality": "public",
        "description": f"Dicatat di meja PTSP oleh persona {persona}, mohon ditindaklanjuti.",
        "name": "Warga Datang", "phone": "0812345678" + str(ALL.index(persona)).zfill(2)}

    wrong: list[str] = []

    def check(label, expected, got):
        if expected != got:
            wrong.append(f"{label}: expected {expected}, got {got}")

    for r in parse_routes():
        if "table" in r:
            continue
        plus = r["expected"]["op_same"].endswith("+")
        listed = (ctx["cid"], ctx["code"]) if plus else ()
        for persona in ALL:
            response = _request(world, persona, r, ctx)
            check(f"{r['service']} {r['method']} {r['rule']} [{r['request']}] as {persona}",
                  r["expected"][persona], _answer(response, listed))

    for table, api in ((API_ACTIONS, True), (FORM_ACTIONS, False)):
        for a in parse_actions(table):
            _check_action(world, ctx, a, api, check)

    # what the refused cells asked for did not happen
    assert world.scalar("routing", "SELECT stage FROM units WHERE code = :c",
                        c=STAGE_UNIT) == stage_before
    stored = {r[0] for r in world.rows(
        "intake", "SELECT description FROM complaints WHERE channel = 'ptsp'")}
    assert stored == {ctx["ptsp_form"](p)["description"] for p in ("desk", "ptsp")}
    assert not wrong, "access matrix violated:\n" + "\n".join(wrong)


def _check_action(world, ctx, a: dict, api: bool, check) -> None:
    """Refused personas all try one complaint (which must stay as it was); each persona allowed
    to act gets a fresh complaint in the right status."""
    allowed = [p for p in ALL if a["expected"][p] == "ok"]
    codes = [world.submit() for _ in range(1 + len(allowed))]
    ids = [world.routed(c)["complaint_id"] for c in codes]
    if a["prep"]:
        for cid in ids:
            assert world["desk"].act(cid, a["prep"], "persiapan").status_code == 200
    label = f"{'API' if api else 'form'} action {a['action']}"
    shared, fresh = ids[0], dict(zip(allowed, ids[1:], strict=True))
    before = world.routing_state(shared)
    for persona in ALL:
        cid = fresh.get(persona, shared)
        text = ctx["code"] if a["action"] == "duplicate" else f"Teks uji {a['action']}"
        extra = {"target_unit": DESK_UNIT} if a["action"] == "reroute" else {}
        person = world[persona]
        if api:
            response = person.act(cid, a["action"], text, **extra)
        else:
            response = person.post(
                "routing", f"/inbox/pengaduan/{cid}/tindakan",
                data={"csrf_token": person.csrf or "", "action": a["action"], "text": text,
                      **extra})
        check(f"{label} as {persona}", a["expected"][persona], _action_answer(response, api))
        if persona in fresh and ACTION_STATUS[a["action"]]:
            check(f"{label} as {persona}: status", ACTION_STATUS[a["action"]],
                  world.routing_state(cid)[0])
    check(f"{label}: the refused attempts changed nothing", before,
          world.routing_state(shared))
