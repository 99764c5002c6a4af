"""The unit inbox in real headless Chromium, against the four services running as processes.

Complaints go in through intake's public HTTP API and are routed to pilot KUAs (units.yaml:
kua-merigi and kua-kepahiang are `pilot`). Staff accounts are made with routing's
`add_account` command. Every action is checked three ways: what the inbox page shows after the
click, the status routing stored, and what the complainant's tracking page (intake, fed by
routing's events) shows.

Playwright's client-side waits (wait_for_url, expect_navigation, expect_download) never return
under the eventlet monkey-patching of tests/conftest.py, even with the services in other
processes. So the test never uses them: a click that navigates returns once the new page has
committed, and the next step waits (in the browser driver) for an element only the new page
has, e.g. the flash message of that action.
"""

import csv
import io
import os
import secrets
from urllib.parse import urlparse

import pytest
from support.wait import wait_for

from services.routing.commands import add_account

pytestmark = pytest.mark.e2e

MERIGI = "17.08.05"  # kua-merigi: pilot
KEPAHIANG = "17.08.04"  # kua-kepahiang: pilot
DESK = "kankemenag-kepahiang"
PASSWORD = "sandi-uji-" + secrets.token_hex(6)
STAFF = {
    "op.merigi": ("Operator KUA Merigi", "unit_operator", "kua-merigi"),
    "op.kepahiang": ("Operator KUA Kepahiang", "unit_operator", "kua-kepahiang"),
    "meja": ("Admin Meja Dumas", "desk_admin", None),
}
WAIT = 20  # seconds, for the events between services (a bound, not an expectation)


@pytest.fixture
def inbox(dumas, pg_urls):
    """The running cluster with staff accounts in routing's account store."""
    for username, (name, role, unit) in STAFF.items():
        add_account(pg_urls["routing"], username, name, role, PASSWORD, unit)
    return dumas


def routing_url(dumas, path: str) -> str:
    return dumas.cluster.url("routing", path)


def submit(dumas, make_complaint, kecamatan: str, email: str = "pelapor@contoh.id",
           **overrides) -> str:
    """A complaint through intake's HTTP API, waited for until routing has assigned it."""
    code = dumas.submit_accepted(make_complaint(kecamatan, email, **overrides))
    wait_for(lambda: (v := dumas.track(code, unavailable_ok=True)) and v["status"] == "routed",
             timeout=WAIT, message=f"{code} routed")
    return code


def stored(dumas, code: str) -> dict:
    row = dumas.rows("routing", "SELECT complaint_id, status, unit_code, rule, reason, "
                     "public_response, resolution, paused_at FROM complaints "
                     "WHERE tracking_code = :code", code=code)
    assert len(row) == 1, f"routing has no complaint {code}"
    return dict(row[0]._mapping)


def tracked(dumas, code: str, status: str) -> dict:
    """The public view once it shows `status` (the events reach intake asynchronously)."""
    return wait_for(
        lambda: (v := dumas.track(code, unavailable_ok=True)) and v["status"] == status and v,
        timeout=WAIT, message=f"tracking page of {code} shows {status}")


def tampered(token: str) -> str:
    """The token with its first character changed (always a different string)."""
    return ("y" if token[0] == "x" else "x") + token[1:]


def sign_in(page, dumas, username: str) -> None:
    page.goto(routing_url(dumas, "/inbox"))
    assert urlparse(page.url).path == "/inbox/masuk"  # not signed in yet: the sign-in page
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.locator("header .who").wait_for()
    assert urlparse(page.url).path == "/inbox"
    assert STAFF[username][0] in page.inner_text("header")


def act(page, action: str, flash: str, text: str | None = None) -> None:
    """Submit the form of one action on the complaint page; wait for the page after it (the
    one with this action's `flash` message)."""
    form = page.locator(f"form.action:has(input[name=action][value={action}])")
    if text is not None:
        form.locator("textarea").fill(text)
    form.locator("button[type=submit]").click()
    page.locator("p.flash", has_text=flash).wait_for()
    assert urlparse(page.url).query == f"ok={action}"


def open_complaint(page, dumas, code: str) -> str:
    """Click the tracking code in the inbox list; the complaint's id from the URL."""
    page.goto(routing_url(dumas, "/inbox"))
    page.click(f"a:text-is('{code}')")
    page.locator("h1", has_text=f"Pengaduan {code}").wait_for()
    return urlparse(page.url).path.rsplit("/", 1)[1]


def test_a_unit_operator_works_a_complaint_from_routed_to_resolved_in_the_browser(
    inbox, make_complaint, page, browser, artifacts_dir
):
    dumas = inbox
    code = submit(dumas, make_complaint, MERIGI)
    sign_in(page, dumas, "op.merigi")
    row = page.locator("tbody tr", has=page.locator(f"a:text-is('{code}')"))
    assert row.count() == 1
    assert "Diteruskan ke unit" in row.inner_text()
    page.screenshot(path=os.path.join(artifacts_dir, "inbox-unit-kua-merigi.png"), full_page=True)

    open_complaint(page, dumas, code)
    assert page.inner_text("#status") == "Diteruskan ke unit"

    # Acknowledge.
    act(page, "acknowledge", "Pengaduan diterima.")
    assert page.inner_text("#status") == "Diterima unit"
    assert stored(dumas, code)["status"] == "acknowledged"
    assert tracked(dumas, code, "acknowledged")["unit_code"] == "kua-merigi"

    # Request information: the clock pauses, the question reaches the tracking page.
    question = "Mohon kirimkan nomor pendaftaran nikah dan tanggal akad yang direncanakan."
    act(page, "request_info", "Permintaan informasi dikirim ke pelapor.", question)
    assert page.inner_text("#status") == "Menunggu informasi tambahan"
    assert "jam berhenti" in page.inner_text("dl")
    assert stored(dumas, code)["status"] == "info_requested"
    assert stored(dumas, code)["paused_at"] is not None
    tracked(dumas, code, "info_requested")

    # The complainant answers on their tracking page (their own browser): back to in progress.
    complainant = browser.new_context(locale="id-ID")
    try:
        tracking = complainant.new_page()
        tracking.goto(dumas.cluster.url("intake", f"/lacak/{code}"))
        assert tracking.inner_text("#status") == "Menunggu informasi tambahan"
        assert question in tracking.content()
        tracking.fill("#text", "Nomor pendaftaran 0412/2026, akad direncanakan 12 Desember.")
        tracking.click("form[action$='/jawab'] button[type=submit]")
        tracking.locator("#flash").wait_for()
        assert urlparse(tracking.url).query == "ok=jawab"
    finally:
        complainant.close()
    wait_for(lambda: stored(dumas, code)["status"] == "in_progress", timeout=WAIT,
             message="the complainant's answer resumes the complaint")
    assert stored(dumas, code)["paused_at"] is None
    page.reload()
    assert page.inner_text("#status") == "Sedang ditangani"
    assert "Nomor pendaftaran 0412/2026" in page.inner_text("table")  # in the timeline

    # Respond with a public answer: it is shown to the unit and on the tracking page.
    answer = "Berkas sudah lengkap. Akad dapat dilaksanakan di KUA Merigi pada 12 Desember."
    act(page, "respond", "Jawaban dikirim ke pelapor.", answer)
    assert page.inner_text("#status") == "Sudah dijawab"
    assert answer in page.inner_text("dl")
    assert (stored(dumas, code)["status"], stored(dumas, code)["public_response"]) == (
        "responded", answer)
    tracked(dumas, code, "responded")
    public = dumas.http.get(dumas.cluster.url("intake", f"/lacak/{code}"), timeout=10)
    assert public.status_code == 200 and answer in public.text

    # Resolve.
    resolution = "Akad nikah terjadwal; pendaftaran selesai diproses."
    act(page, "resolve", "Pengaduan ditandai selesai.", resolution)
    assert page.inner_text("#status") == "Selesai"
    assert [a for a in page.locator("input[name=action]").all()
            if a.get_attribute("value") in ("acknowledge", "respond", "resolve")] == []
    assert (stored(dumas, code)["status"], stored(dumas, code)["resolution"]) == (
        "resolved", resolution)
    tracked(dumas, code, "resolved")
    public = dumas.http.get(dumas.cluster.url("intake", f"/lacak/{code}"), timeout=10).text
    assert resolution in public and "Beri penilaian" in public  # now the complainant may rate


def test_a_unit_returns_a_complaint_that_is_not_theirs_with_a_reason(
    inbox, make_complaint, page
):
    dumas = inbox
    code = submit(dumas, make_complaint, MERIGI)
    sign_in(page, dumas, "op.merigi")
    complaint_id = open_complaint(page, dumas, code)

    # The reason is required: an empty one is refused by the browser (required) and the server.
    form = page.locator("form.action:has(input[name=action][value=return])")
    assert form.locator("textarea").get_attribute("required") is not None

    reason = "Calon pengantin berdomisili di Kecamatan Kepahiang, bukan Merigi."
    act(page, "return", "Pengaduan dikembalikan ke Meja Dumas.", reason)
    assert urlparse(page.url).path == "/inbox"
    assert page.locator(f"a:text-is('{code}')").count() == 0  # no longer in this unit's list

    row = stored(dumas, code)
    assert (row["status"], row["unit_code"], row["rule"]) == ("routed", DESK, "returned")
    assert reason in row["reason"]
    view = wait_for(
        lambda: (v := dumas.track(code, unavailable_ok=True)) and v["unit_code"] == DESK and v,
        timeout=WAIT, message="the tracking page shows the desk")
    assert view["status"] == "routed"
    # The unit no longer sees it at all; the desk does, with the reason.
    assert page.goto(routing_url(dumas, f"/inbox/pengaduan/{complaint_id}")).status == 404
    page.click("header button[type=submit]")  # Keluar
    page.locator("#username").wait_for()
    sign_in(page, dumas, "meja")
    open_complaint(page, dumas, code)
    assert reason in page.inner_text("dl")


def test_a_unit_never_reaches_another_units_complaint_and_forged_forms_change_nothing(
    inbox, make_complaint, page
):
    dumas = inbox
    merigi = submit(dumas, make_complaint, MERIGI)
    own = submit(dumas, make_complaint, KEPAHIANG, "warga.kepahiang@contoh.id")
    secret = submit(dumas, make_complaint, KEPAHIANG, "rahasia@contoh.id",
                    confidentiality="confidential",
                    description="Rahasia: penghulu meminta saya datang ke rumahnya di Desa "
                                "Pasar Ujung untuk urusan nikah, mohon ditindaklanjuti.")
    merigi_id = stored(dumas, merigi)["complaint_id"]
    own_id = stored(dumas, own)["complaint_id"]
    sign_in(page, dumas, "op.kepahiang")

    # The list: its own two, not Merigi's.
    listed = page.inner_text("tbody")
    assert own in listed and secret in listed and merigi not in listed

    # Detail page and JSON API of Merigi's complaint: 404, as if it did not exist.
    response = page.goto(routing_url(dumas, f"/inbox/pengaduan/{merigi_id}"))
    assert response.status == 404
    assert "Tidak ditemukan" in page.inner_text("main")
    api = page.request.get(routing_url(dumas, f"/api/v1/inbox/complaints/{merigi_id}"))
    assert api.status == 404 and api.json()["error"]["code"] == "not_found"
    listing = page.request.get(routing_url(dumas, "/api/v1/inbox")).json()
    assert {i["tracking_code"] for i in listing["items"]} == {own, secret}

    # Acting on it with a valid form token: 404, and nothing changed.
    page.goto(routing_url(dumas, f"/inbox/pengaduan/{own_id}"))
    token = page.locator("form.action input[name=csrf_token]").first.get_attribute("value")
    other = page.request.post(routing_url(dumas, f"/inbox/pengaduan/{merigi_id}/tindakan"),
                              form={"action": "acknowledge", "csrf_token": token})
    assert other.status == 404
    assert stored(dumas, merigi)["status"] == "routed"

    # A forged form (no CSRF token) on its own complaint is refused and changes nothing.
    forged = page.request.post(routing_url(dumas, f"/inbox/pengaduan/{own_id}/tindakan"),
                               form={"action": "acknowledge"})
    assert forged.status == 403
    assert "Formulir kedaluwarsa" in forged.text()
    wrong = page.request.post(routing_url(dumas, f"/inbox/pengaduan/{own_id}/tindakan"),
                              form={"action": "acknowledge", "csrf_token": tampered(token)})
    assert wrong.status == 403
    api_forged = page.request.post(
        routing_url(dumas, f"/api/v1/inbox/complaints/{own_id}/actions"),
        data={"action": "acknowledge"})
    assert api_forged.status == 403 and api_forged.json()["error"]["code"] == "csrf_failed"
    assert stored(dumas, own)["status"] == "routed"
    assert dumas.track(own)["status"] == "routed"

    # The export: the unit's own complaints only, the confidential one without its text.
    # (The link's file fetched with the browser's session: expect_download is a client wait.)
    page.goto(routing_url(dumas, "/inbox"))
    link = page.get_attribute("#export", "href")
    assert link == "/inbox/ekspor.csv"
    download = page.request.get(routing_url(dumas, link))
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in download.headers["content-disposition"]
    exported = csv_rows(download.body())
    assert {r["Kode pelacakan"] for r in exported} == {own, secret}
    by_code = {r["Kode pelacakan"]: r for r in exported}
    assert by_code[own]["Unit"] == "KUA Kecamatan Kepahiang"
    assert by_code[own]["Status"] == "Diteruskan ke unit"
    assert by_code[own]["Ringkasan"].startswith("Pendaftaran nikah kami")
    assert by_code[secret]["Kerahasiaan"] == "Rahasia"
    assert "Pasar Ujung" not in by_code[secret]["Ringkasan"]
    api_export = page.request.get(routing_url(dumas, "/api/v1/inbox/export.csv"))
    assert {r["Kode pelacakan"] for r in csv_rows(api_export.body())} == {own, secret}
    # Asking the API export for another unit gives nothing of that unit.
    other_unit = page.request.get(routing_url(dumas, "/api/v1/inbox/export.csv?unit=kua-merigi"))
    assert other_unit.status == 200 and csv_rows(other_unit.body()) == []

    # The desk exports every unit's complaints.
    desk = page.context.browser.new_context(locale="id-ID").new_page()
    try:
        sign_in(desk, dumas, "meja")
        everything = csv_rows(desk.request.get(routing_url(dumas, "/inbox/ekspor.csv")).body())
        assert {merigi, own, secret} <= {r["Kode pelacakan"] for r in everything}
    finally:
        desk.context.close()


def csv_rows(body: bytes) -> list[dict]:
    text = body.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text), delimiter=";")
    assert reader.fieldnames and reader.fieldnames[0] == "Kode pelacakan", text[:200]
    return list(reader)
