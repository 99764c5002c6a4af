"""reporting's pages in real headless Chromium (the public statistics page, sign-in, the dashboard
for the desk and for a unit head) with screenshots kept in test-artifacts/, and who may download
the exports (CSV, XLSX) and the monthly PDF, over HTTP, per role.

Sign-in goes through routing's `authenticate` RPC, so routing runs next to reporting; the
accounts are created in routing's database. The statistics come from events recorded into
reporting's database exactly as its consumers record them."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from services.reporting import handlers
from services.reporting.service import ReportingService
from services.routing import accounts
from services.routing.service import RoutingService
from shared.auth import SESSION_COOKIE, issue_session
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.workdays import WIB

PASSWORD = "kata-sandi-panjang"
STAFF = {  # username: (role, unit)
    "meja": ("desk_admin", None),
    "auditor": ("auditor", None),
    "kepala.merigi": ("unit_head", "kua-merigi"),
    "op.merigi": ("unit_operator", "kua-merigi"),
    "ptsp": ("ptsp_officer", None),
}
SECRET_TEXT = "Pungutan liar oleh oknum penghulu berinisial Z"
PUBLIC_TEXT = "Antrean pendaftaran nikah terlalu panjang"
MONTH = "2026-11"


def wib(*args):
    return datetime(*args, tzinfo=WIB).astimezone(UTC)


class Story:
    """Events of one complaint, in the producers' shapes."""

    def __init__(self, received_at, unit, *, channel="web", category="nikah_rujuk",
                 confidentiality="public", kecamatan="17.08.05", description=PUBLIC_TEXT):
        self.id = str(uuid.uuid4())
        self.code = f"DMS-PG-{self.id[:8].upper()}"
        self.unit = unit
        common = {"complaint_id": self.id, "tracking_code": self.code}
        self.common = common
        self.events = [
            ("complaint_received", {
                **common, "channel": channel, "category": category, "description": description,
                "kecamatan_code": kecamatan, "confidentiality": confidentiality,
                "received_at": received_at}),
            ("complaint_routed", {
                **common, "unit_code": unit, "unit_name": unit, "unit_type": "kua",
                "stage": "live", "rule": "test", "reason": "Uji", "category": category,
                "channel": channel, "confidentiality": confidentiality,
                "kecamatan_code": kecamatan, "routed_at": received_at + timedelta(minutes=1),
                "due_at": received_at + timedelta(days=7), "status": "routed", "seq": 1}),
        ]

    def resolved(self, responded_at, resolved_at):
        self.events.append(("complaint_responded", {
            **self.common, "unit_code": self.unit, "actor_role": "unit_operator",
            "status": "responded", "seq": 2, "at": responded_at, "response": "Jawaban"}))
        self.events.append(("complaint_resolved", {
            **self.common, "unit_code": self.unit, "actor_role": "unit_operator",
            "status": "resolved", "seq": 3, "at": resolved_at, "resolution": "Selesai"}))
        return self


def seed_complaints(url: str) -> dict[str, Story]:
    stories = {
        # kua-merigi: one public complaint resolved, one confidential still open
        "merigi_done": Story(wib(2026, 11, 2, 9), "kua-merigi").resolved(
            wib(2026, 11, 3, 10), wib(2026, 11, 5, 10)),
        "merigi_secret": Story(wib(2026, 11, 9, 9), "kua-merigi", channel="whatsapp",
                               confidentiality="confidential", description=SECRET_TEXT),
        # other units, open
        "desk": Story(wib(2026, 11, 10, 9), "kankemenag-kepahiang", category="integritas",
                      confidentiality="anonymous", kecamatan="17.08.01",
                      description=SECRET_TEXT + " (anonim)"),
        "kepahiang": Story(wib(2026, 11, 11, 9), "kua-kepahiang", channel="qr",
                           kecamatan="17.08.01"),
    }
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        for story in stories.values():
            for event_type, data in story.events:
                envelope = build_event(event_type, data, correlation_id=story.id)
                handlers.record(lambda: UnitOfWork(factory, None, None), load_event(envelope))
    finally:
        engine.dispose()
    return stories


def create_staff(url: str) -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        for username, (role, unit) in STAFF.items():
            accounts.create(session, username, username.title(), role, PASSWORD, unit)
        session.commit()
    engine.dispose()


@pytest.fixture
def world(start_service, pg_urls):
    """routing (accounts, authenticate RPC) and reporting running, with four complaints."""
    create_staff(pg_urls["routing"])
    start_service(RoutingService)
    reporting = start_service(ReportingService)
    stories = seed_complaints(pg_urls["reporting"])
    return reporting, stories


def sign_in(page, reporting, username, password=PASSWORD, next_path="/dasbor"):
    page.goto(reporting.url(next_path))
    assert "/masuk" in page.url  # not signed in yet: the dashboard asks for it
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form.signin button[type=submit]")


def texts(page, selector) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def first_cells(page, table_id) -> list[str]:
    return texts(page, f"#{table_id} tbody tr td:first-child")


# -- browser ------------------------------------------------------------------------------------


def test_public_page_shows_aggregates_without_personal_data_or_complaint_text(
    world, page, artifacts_dir
):
    reporting, stories = world
    response = page.goto(reporting.url("/statistik"))
    assert response.status == 200
    assert response.headers["content-security-policy"]
    assert page.text_content("h1").strip() == "Statistik Pengaduan Masyarakat"
    assert page.text_content("#total").strip() == "4"
    assert page.text_content("#backlog").strip() == "3"
    # charts of the aggregates (status, channel mix) drawn as inline SVG
    assert page.locator("#chart-status rect").count() == 2  # routed, resolved
    assert page.locator("#chart-channel rect").count() == 3  # web, whatsapp, qr
    page.screenshot(path=f"{artifacts_dir}/reporting-public.png", full_page=True)

    html = page.content()
    assert SECRET_TEXT not in html and PUBLIC_TEXT not in html
    for story in stories.values():
        assert story.code not in html  # no tracking codes (they open the complaint's status)
    for unit in ("kua-merigi", "kua-kepahiang", "kankemenag-kepahiang"):
        assert unit not in html  # no per-unit numbers for the public
    assert page.locator("select[name=unit]").count() == 0

    # asking for one unit without signing in is refused in Indonesian, not answered
    refused = page.goto(reporting.url("/statistik?unit=kua-merigi"))
    assert refused.status == 403
    assert "hanya untuk petugas" in page.content()


def test_desk_admin_signs_in_and_sees_every_unit_on_the_dashboard(world, page, artifacts_dir):
    reporting, stories = world
    sign_in(page, reporting, "meja")
    page.wait_for_selector("#sla-by-unit")
    assert page.url.endswith("/dasbor")
    assert page.text_content("h1").strip() == "Dasbor Laporan Dumas"
    assert "Meja" in page.text_content("header .who")
    assert page.text_content("#total").strip() == "4"
    assert sorted(first_cells(page, "sla-by-unit")) == [
        "kankemenag-kepahiang", "kua-kepahiang", "kua-merigi"]
    open_codes = first_cells(page, "open-complaints")
    assert sorted(open_codes) == sorted(
        stories[k].code for k in ("merigi_secret", "desk", "kepahiang"))
    assert SECRET_TEXT not in page.content()  # staff view lists codes, never complaint text
    assert page.locator("a[href^='/laporan/bulanan.pdf']").count() == 1
    page.screenshot(path=f"{artifacts_dir}/reporting-dashboard-desk.png", full_page=True)

    # filters work without JavaScript: a GET form
    page.select_option("select[name=unit]", "kua-kepahiang")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("#open-complaints")
    assert "unit=kua-kepahiang" in page.url
    assert page.text_content("#total").strip() == "1"
    assert first_cells(page, "open-complaints") == [stories["kepahiang"].code]

    # sign out: back to the public page, the dashboard asks for a sign-in again
    page.click("header form button[type=submit]")
    page.wait_for_selector("h1")
    assert page.url.endswith("/statistik")
    page.goto(reporting.url("/dasbor"))
    assert "/masuk" in page.url


def test_a_unit_head_sees_only_their_own_unit(world, page, artifacts_dir):
    reporting, stories = world
    sign_in(page, reporting, "kepala.merigi")
    page.wait_for_selector("#sla-by-unit")
    assert page.url.endswith("/dasbor")
    assert page.text_content("h1").strip() == "Dasbor Laporan Dumas: kua-merigi"
    assert page.text_content("#total").strip() == "2"
    assert first_cells(page, "sla-by-unit") == ["kua-merigi"]
    assert first_cells(page, "open-complaints") == [stories["merigi_secret"].code]
    html = page.content()
    for other in ("desk", "kepahiang"):
        assert stories[other].code not in html
    assert "kua-kepahiang" not in html and "kankemenag-kepahiang" not in html
    # the unit choice is locked to their unit; no monthly recap of all units
    assert texts(page, "select[name=unit] option") == ["kua-merigi"]
    assert page.locator("a[href^='/laporan/bulanan.pdf']").count() == 0
    page.screenshot(path=f"{artifacts_dir}/reporting-dashboard-unit-head.png", full_page=True)

    # another unit by URL: refused, not widened
    response = page.goto(reporting.url("/dasbor?unit=kua-kepahiang"))
    assert response.status == 403
    assert "Anda hanya dapat melihat laporan unit Anda." in page.content()


def test_a_wrong_password_shows_an_indonesian_error_and_no_session(world, page, artifacts_dir):
    reporting, _ = world
    sign_in(page, reporting, "meja", password="bukan-kata-sandinya")
    page.wait_for_selector("p.error")
    assert page.text_content("p.error").strip() == "Nama pengguna atau kata sandi salah."
    assert page.input_value("input[name=username]") == "meja"  # kept, the password is not
    assert page.input_value("input[name=password]") == ""
    page.screenshot(path=f"{artifacts_dir}/reporting-signin-error.png")
    assert SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}
    page.goto(reporting.url("/dasbor"))
    assert "/masuk" in page.url


def test_an_account_without_reporting_rights_is_refused_at_sign_in(world, page):
    reporting, _ = world
    sign_in(page, reporting, "op.merigi")
    page.wait_for_selector("p.error")
    assert page.text_content("p.error").strip() == "Akun Anda tidak berhak melihat laporan."
    assert SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}


# -- exports and the monthly PDF over HTTP, per role --------------------------------------------


def as_role(reporting, username):
    """reporting's HTTP session, signed in as `username` (None: anonymous)."""
    reporting.http.cookies.clear()
    if username is not None:
        role, unit = STAFF[username]
        _, cookie = issue_session(username, role, unit, username.title())
        reporting.http.cookies.set(SESSION_COOKIE, cookie)
    return reporting


EXPORT_PATHS = ("/laporan/ekspor.csv", "/laporan/ekspor.xlsx",
                f"/laporan/bulanan.pdf?month={MONTH}")
EXPECTED = {  # username: status for (csv, xlsx, pdf)
    None: (401, 401, 401),
    "ptsp": (403, 403, 403),
    "op.merigi": (403, 403, 403),
    "kepala.merigi": (200, 200, 403),
    "auditor": (200, 200, 200),
    "meja": (200, 200, 200),
}


def test_who_may_download_the_exports_and_the_monthly_recap(world):
    reporting, _ = world
    seen = {}
    for username in EXPECTED:
        client = as_role(reporting, username)
        responses = [client.get(path) for path in EXPORT_PATHS]
        seen[username] = tuple(r.status_code for r in responses)
        for r in responses:
            if r.status_code != 200:
                body = r.json()
                assert body["error"]["code"] and body["error"]["message"], body
    assert seen == EXPECTED


def csv_table(body: bytes, title: str) -> dict[str, str]:
    """{first cell: second cell} of the CSV table under `title`."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    start = rows.index([title]) + 2  # title row, header row
    out = {}
    for row in rows[start:]:
        if not row or not any(row):
            break
        out[row[0]] = row[1]
    return out


def test_exports_are_scoped_to_what_the_role_may_see(world):
    reporting, _ = world
    desk = as_role(reporting, "meja").get("/laporan/ekspor.csv")
    assert desk.headers["content-type"].startswith("text/csv")
    assert "attachment" in desk.headers["content-disposition"]
    assert csv_table(desk.content, "Ringkasan")["Jumlah pengaduan"] == "4"
    assert set(csv_table(desk.content, "Kepatuhan SLA per unit")) == {
        "kankemenag-kepahiang", "kua-kepahiang", "kua-merigi"}

    head = as_role(reporting, "kepala.merigi")
    own = head.get("/laporan/ekspor.csv")
    assert csv_table(own.content, "Ringkasan")["Jumlah pengaduan"] == "2"
    assert set(csv_table(own.content, "Kepatuhan SLA per unit")) == {"kua-merigi"}
    xlsx = head.get("/laporan/ekspor.xlsx")
    assert xlsx.status_code == 200
    workbook = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    cells = {str(c) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True)
             for c in row if c is not None}
    assert "kua-merigi" in cells and "kua-kepahiang" not in cells
    assert "Jumlah pengaduan" in cells  # Indonesian headers
    other = head.get("/laporan/ekspor.xlsx?unit=kua-kepahiang")
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden_unit"

    pdf = as_role(reporting, "auditor").get(f"/laporan/bulanan.pdf?month={MONTH}")
    assert pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Laporan Bulanan Dumas" in text
    assert "November 2026" in text
    assert SECRET_TEXT not in text
    bad = as_role(reporting, "meja").get("/laporan/bulanan.pdf?month=2026-13")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_month"


def test_the_dashboard_over_http_per_role(world):
    reporting, stories = world
    anonymous = as_role(reporting, None).get("/dasbor", allow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/masuk?next=")
    desk = as_role(reporting, "meja").get("/dasbor")
    assert desk.status_code == 200
    assert all(stories[k].code in desk.text for k in ("merigi_secret", "desk", "kepahiang"))
    head = as_role(reporting, "kepala.merigi").get("/dasbor")
    assert head.status_code == 200
    assert stories["merigi_secret"].code in head.text
    assert stories["desk"].code not in head.text
    assert as_role(reporting, "ptsp").get("/dasbor").status_code == 403
