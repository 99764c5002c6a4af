"""The unit inbox in real headless Chromium: sign in, acknowledge, request information, respond,
resolve, return; another unit's complaint answers 404 (pages and API)."""

import os

import pytest
from support import amqp
from support.routing_inbox import PASSWORD, complaint_row, create_staff, route
from support.wait import wait_for

from services.routing.service import RoutingService
from shared.contracts import build_event


@pytest.fixture
def routing(start_service, pg_urls):
    create_staff(pg_urls["routing"])
    return start_service(RoutingService, SLA_TICK_SECONDS=3600)


def sign_in(page, routing, username):
    page.goto(routing.url("/inbox"))
    assert "/inbox/masuk" in page.url  # not signed in: the sign-in page
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")


def do(page, label, text=None):
    form = page.locator("form.action", has=page.locator(f"button:has-text('{label}')"))
    if text is not None:
        form.locator("textarea").fill(text)
    form.locator("button").click()
    page.wait_for_load_state()


def test_a_unit_operator_works_a_complaint_in_the_browser(
    routing, page, amqp_uri, pg_urls, artifacts_dir
):
    row = route(amqp_uri, pg_urls["routing"], confidentiality="confidential")
    cid = row["complaint_id"]
    sign_in(page, routing, "op.merigi")
    assert page.locator(f"text={row['tracking_code']}").count() == 1
    assert page.locator(".badge.secret").count() == 1  # confidential is shown as such

    page.click(f"text={row['tracking_code']}")
    assert page.locator("#status").inner_text() == "Diteruskan ke unit"
    assert "Rahasia" in page.content()
    do(page, "Terima pengaduan")
    assert page.locator("#status").inner_text() == "Diterima unit"
    assert page.locator(".flash").inner_text() == "Pengaduan diterima."
    do(page, "Mulai tangani")
    do(page, "Minta informasi tambahan", "Mohon kirim nomor pendaftaran nikah")
    assert page.locator("#status").inner_text() == "Menunggu informasi tambahan"

    amqp.publish_event(amqp_uri, build_event(
        "complaint_info_added",
        {"complaint_id": cid, "tracking_code": row["tracking_code"], "channel": "web",
         "text": "Nomornya 123/2026", "at": row["received_at"]}, correlation_id=cid))
    wait_for(lambda: complaint_row(pg_urls["routing"], cid)["status"] == "in_progress")
    page.reload()
    assert "Nomornya 123/2026" in page.content()  # the answer is in the timeline

    do(page, "Kirim jawaban", "")  # empty: the browser's `required` stops it; nothing changes
    assert page.locator("#status").inner_text() == "Sedang ditangani"
    do(page, "Kirim jawaban", "Berkas lengkap, akad dijadwalkan Senin.")
    assert page.locator("#status").inner_text() == "Sudah dijawab"
    do(page, "Tandai selesai", "Akad sudah dijadwalkan")
    assert page.locator("#status").inner_text() == "Selesai"
    page.screenshot(path=os.path.join(artifacts_dir, "routing-inbox-resolved.png"),
                    full_page=True)
    assert complaint_row(pg_urls["routing"], cid)["seq"] == 7

    # Returning another complaint as not theirs: back to the desk, gone from this inbox.
    other = route(amqp_uri, pg_urls["routing"])
    page.goto(routing.url(f"/inbox/pengaduan/{other['complaint_id']}"))
    do(page, "Kembalikan ke Meja Dumas", "Ini urusan KUA Kepahiang")
    assert page.url.endswith("/inbox?ok=return")
    assert page.locator(f"text={other['tracking_code']}").count() == 0
    assert complaint_row(pg_urls["routing"], other["complaint_id"])["unit_code"] == \
        "kankemenag-kepahiang"


def test_another_units_complaint_is_404_in_pages_and_api(routing, page, amqp_uri, pg_urls):
    row = route(amqp_uri, pg_urls["routing"])  # kua-merigi's
    sign_in(page, routing, "op.kepahiang")
    assert page.locator(f"text={row['tracking_code']}").count() == 0
    response = page.goto(routing.url(f"/inbox/pengaduan/{row['complaint_id']}"))
    assert response.status == 404
    assert "Tidak ditemukan" in page.content()
    api = page.request.get(routing.url(f"/api/v1/inbox/complaints/{row['complaint_id']}"))
    assert api.status == 404 and api.json()["error"]["code"] == "not_found"
    # A forged form post (no CSRF token) and a real one for someone else's complaint.
    forged = page.request.post(
        routing.url(f"/inbox/pengaduan/{row['complaint_id']}/tindakan"),
        form={"action": "acknowledge"})
    assert forged.status in (403, 404)
    assert complaint_row(pg_urls["routing"], row["complaint_id"])["status"] == "routed"
    # The audit trail is for the desk and auditors only.
    assert page.goto(routing.url("/inbox/audit")).status == 403


def test_the_desk_sees_the_audit_trail_and_changes_a_stage_in_the_browser(
    routing, page, amqp_uri, pg_urls
):
    route(amqp_uri, pg_urls["routing"])
    sign_in(page, routing, "meja")
    page.goto(routing.url("/inbox/unit"))
    form = page.locator("form[action='/inbox/unit/kua-ujan-mas/tahap']")
    form.locator("select").select_option("pilot")
    form.locator("input[name=reason]").fill("uji coba bulan depan")
    form.locator("button").click()
    page.wait_for_url("**/inbox/unit?ok=stage")
    assert page.locator("#stage-kua-ujan-mas").inner_text() == "pilot"
    page.goto(routing.url("/inbox/audit"))
    content = page.content()
    assert "Tahap unit diubah" in content and "uji coba bulan depan" in content
    assert "Diteruskan" in content
