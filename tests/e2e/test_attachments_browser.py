"""Evidence attachments end to end in headless Chromium, the four services as processes: a
citizen attaches a photo and a PDF on the web form (no JavaScript needed), sees them on the
tracking page; the unit handling the complaint sees the thumbnail in its inbox and opens the
files; another unit gets 404 for the same file, with the unit's link and with one minted for
its own session."""

import hashlib
import hmac
import io
import re
from pathlib import Path

import pytest
import requests
from PIL import Image
from support.evidence_files import GPS_IFD, jpeg_with_gps, pdf_bytes
from support.wait import wait_for

from services.routing.commands import add_account
from shared.auth import SESSION_COOKIE, issue_session, read_session
from shared.storage import sign_link

PASSWORD = "kata-sandi-uji-panjang"
DESCRIPTION = "Pendaftaran nikah kami di KUA Merigi sudah dua minggu belum diproses, ini buktinya."


@pytest.fixture
def evidence(tmp_path) -> tuple[Path, Path]:
    photo = tmp_path / "atap bocor.jpg"
    photo.write_bytes(jpeg_with_gps(size=(640, 480)))
    pdf = tmp_path / "kwitansi.pdf"
    pdf.write_bytes(pdf_bytes())
    return photo, pdf


def sign_in(page, cluster, username):
    page.goto(cluster.url("routing", "/inbox/masuk"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    # Waiting on an element, not on the URL: Playwright's URL waits hang now and then under
    # eventlet's monkey-patching (see NAMEKO-NOTES / the e2e notes); element waits do not.
    page.locator("select#status").wait_for()


def image_loaded(page, selector) -> int:
    """The natural width of a loaded image (0: it did not load)."""
    page.locator(selector).wait_for()
    wait_for(lambda: page.eval_on_selector(selector, "img => img.complete"), timeout=10,
             message=f"{selector} loaded")
    return page.eval_on_selector(selector, "img => img.naturalWidth")


def test_a_photo_and_a_pdf_reach_the_tracking_page_and_the_unit_but_not_another_unit(
        dumas, cluster, browser, page, pg_urls, var_dir, evidence, artifacts_dir):
    photo, pdf = evidence
    page.goto(cluster.url("intake", "/"))
    page.check("input[name=category][value=nikah_rujuk]")
    page.select_option("#kecamatan_code", "17.08.05")  # Merigi: KUA Merigi, pilot
    page.fill("#description", DESCRIPTION)
    page.set_input_files("#lampiran", [str(photo), str(pdf)])
    page.click("button[type=submit]")

    code = page.text_content("#tracking-code").strip()
    listed = page.text_content("#attachments")
    assert "atap bocor.jpg" in listed and "kwitansi.pdf" in listed

    page.goto(cluster.url("intake", f"/lacak/{code}"))
    assert image_loaded(page, "#attachments img") == 640
    links = page.eval_on_selector_all("#attachments a.attachment-link",
                                      "els => els.map(e => e.getAttribute('href'))")
    assert len(links) == 2
    downloaded = page.request.get(cluster.url("intake", links[1]))
    assert downloaded.status == 200
    assert downloaded.headers["content-disposition"].startswith("attachment")
    assert downloaded.body() == pdf.read_bytes()
    page.screenshot(path=f"{artifacts_dir}/attachments-tracking.png")

    complaint_id = dumas.scalar("intake", "SELECT id FROM complaints WHERE tracking_code = :c",
                                c=code)
    wait_for(lambda: dumas.scalar(
        "routing", "SELECT count(*) FROM attachments a JOIN complaints c "
        "ON c.complaint_id = a.complaint_id WHERE c.complaint_id = :i", i=complaint_id) == 2,
        timeout=30, interval=0.2, message="routing knows the complaint and its attachments")

    add_account(pg_urls["routing"], "op.merigi", "Operator Merigi", "unit_operator", PASSWORD,
                "kua-merigi")
    add_account(pg_urls["routing"], "op.kepahiang", "Operator Kepahiang", "unit_operator",
                PASSWORD, "kua-kepahiang")

    sign_in(page, cluster, "op.merigi")
    page.goto(cluster.url("routing", f"/inbox/pengaduan/{complaint_id}"))
    assert 0 < image_loaded(page, "#attachments img.thumb") <= 240  # a thumbnail, not the photo
    unit_links = page.eval_on_selector_all("#attachments a.attachment-link",
                                           "els => els.map(e => e.getAttribute('href'))")
    photo_url = cluster.url("routing", unit_links[0])
    full = page.request.get(photo_url)
    assert full.status == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.headers["x-content-type-options"] == "nosniff"
    assert GPS_IFD not in Image.open(io.BytesIO(full.body())).getexif()
    page.screenshot(path=f"{artifacts_dir}/attachments-inbox.png")
    # The JSON API lists the same files, with links that work for this session.
    listed = page.request.get(cluster.url("routing", f"/api/v1/inbox/complaints/{complaint_id}"))
    files = listed.json()["attachments"]
    assert [(f["name"], f["kind"], f["media_type"]) for f in files] == [
        ("atap bocor.jpg", "image", "image/jpeg"), ("kwitansi.pdf", "document", "application/pdf")]
    # the same file as the page's link (each link carries its own expiry: the session slides)
    assert files[0]["url"].split("?")[0] == unit_links[0].split("?")[0]
    assert files[0]["thumb_url"].startswith(files[0]["url"]) and files[1]["thumb_url"] is None
    assert page.request.get(cluster.url("routing", files[1]["url"])).body() == pdf.read_bytes()

    other = browser.new_context(locale="id-ID")
    try:
        stranger = other.new_page()
        sign_in(stranger, cluster, "op.kepahiang")
        assert stranger.request.get(photo_url).status == 404  # the unit's link
        # A link properly signed for the other unit's own session: still 404, because every
        # request is authorised against the complaint's unit.
        cookie = next(c["value"] for c in other.cookies() if c["name"] == SESSION_COOKIE)
        secret = (var_dir / "session-secret").read_bytes().strip()
        session = read_session(cookie, secret=secret)
        key = hmac.new(secret, b"attachment-links:routing", hashlib.sha256).digest()
        sha256 = re.search(r"/([0-9a-f]{64})\?", photo_url).group(1)
        own_link = cluster.url("routing", f"/inbox/lampiran/{complaint_id}/{sha256}?k="
                               + sign_link(key, complaint_id, sha256, session.nonce))
        assert stranger.request.get(own_link).status == 404
        assert stranger.goto(cluster.url(
            "routing", f"/inbox/pengaduan/{complaint_id}")).status == 404
    finally:
        other.close()

    # An auditor sees the evidence of every unit; a PTSP officer (no inbox) does not.
    add_account(pg_urls["routing"], "auditor", "Auditor", "auditor", PASSWORD)
    auditor = browser.new_context(locale="id-ID")
    try:
        audit_page = auditor.new_page()
        sign_in(audit_page, cluster, "auditor")
        audit_page.goto(cluster.url("routing", f"/inbox/pengaduan/{complaint_id}"))
        assert image_loaded(audit_page, "#attachments img.thumb") > 0
        audit_links = audit_page.eval_on_selector_all(
            "#attachments a.attachment-link", "els => els.map(e => e.getAttribute('href'))")
        assert audit_page.request.get(cluster.url("routing", audit_links[1])).status == 200
        officer, officer_cookie = issue_session("rina", "ptsp_officer", None, "Rina",
                                                secret=secret)
        officer_link = cluster.url("routing", f"/inbox/lampiran/{complaint_id}/{sha256}?k="
                                   + sign_link(key, complaint_id, sha256, officer.nonce))
        # Its own session and a link signed for it: still 404 (role without inbox access);
        # the same request with an auditor session minted the same way is 200.
        assert requests.get(officer_link, cookies={SESSION_COOKIE: officer_cookie},
                            timeout=10).status_code == 404
        auditor_session, auditor_cookie = issue_session("auditor", "auditor", None, "Auditor",
                                                        secret=secret)
        auditor_link = cluster.url("routing", f"/inbox/lampiran/{complaint_id}/{sha256}?k="
                                   + sign_link(key, complaint_id, sha256, auditor_session.nonce))
        assert requests.get(auditor_link, cookies={SESSION_COOKIE: auditor_cookie},
                            timeout=10).status_code == 200
    finally:
        auditor.close()
