"""intake's pages in real headless Chromium: the web form (valid and invalid), the tracking page
and lookup, QR links with a valid and a tampered token, PTSP sign-in and entry."""

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from support.intake_channels import intake_config

from services.intake.db import complaints
from services.intake.domain import qrtoken
from services.intake.service import IntakeService
from services.routing import accounts
from services.routing.service import RoutingService

DESCRIPTION = "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses petugas."


@pytest.fixture
def intake(start_service):
    return start_service(IntakeService, **intake_config())


def stored(url, code):
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(select(complaints).where(complaints.c.tracking_code == code)).first()
    engine.dispose()
    return row


def fill_valid(page, description=DESCRIPTION):
    page.check("input[name=category][value=nikah_rujuk]")
    page.select_option("#kecamatan_code", "17.08.05")
    page.fill("#description", description)
    page.fill("#name", "Siti Aminah")
    page.fill("#phone", "0812-3456-7890")


def test_a_citizen_submits_the_form_and_follows_the_complaint(intake, page, pg_urls,
                                                              artifacts_dir):
    page.goto(intake.url("/"))
    fill_valid(page)
    page.click("button[type=submit]")

    code = page.text_content("#tracking-code").strip()
    assert "Pengaduan Anda sudah kami terima" in page.content()
    assert "hari kerja" in page.content()
    page.screenshot(path=f"{artifacts_dir}/intake-sent.png")
    row = stored(pg_urls["intake"], code)
    assert (row.channel, row.kecamatan_code) == ("web", "17.08.05")

    page.goto(intake.url("/lacak"))
    page.fill("#kode", code.lower().replace("-", " "))
    page.click("button[type=submit]")
    assert page.url.endswith(f"/lacak/{code}")
    assert page.text_content("#status").strip() == "Diterima"
    assert "Diterima" in page.text_content("#history")


def test_an_invalid_form_shows_errors_next_to_the_fields_and_keeps_the_input(intake, page,
                                                                           pg_urls):
    page.goto(intake.url("/"))
    fill_valid(page, description="pendek")
    page.fill("#phone", "12")
    page.click("button[type=submit]")

    assert page.is_visible("#form-error")
    assert "minimal 10 karakter" in page.text_content("#err-description")
    assert page.is_visible("#err-complainant-phone")
    assert page.input_value("#description") == "pendek"
    assert page.input_value("#name") == "Siti Aminah"
    assert page.is_checked("input[name=category][value=nikah_rujuk]")


def test_an_unknown_code_in_the_lookup_says_so(intake, page):
    page.goto(intake.url("/lacak?kode=DMS-2222-2222-2223"))
    assert "tidak ditemukan" in page.text_content("#err-kode")


def test_a_qr_link_presets_the_unit_and_a_tampered_one_opens_the_plain_form(
    intake, page, pg_urls
):
    token = qrtoken.sign(b"qr-secret-for-tests", "kua-merigi", "ptsp")
    page.goto(intake.url(f"/?t={token}"))
    assert "kua-merigi" in page.text_content("#unit-note")
    fill_valid(page)
    page.click("button[type=submit]")
    row = stored(pg_urls["intake"], page.text_content("#tracking-code").strip())
    assert (row.channel, row.unit_hint, row.unit_hint_trusted, row.qr_location) == (
        "qr", "kua-merigi", True, "ptsp")

    tampered = token.replace("kua-merigi", "kua-kepahiang")
    page.goto(intake.url(f"/?t={tampered}"))
    assert not page.is_visible("#unit-note")
    fill_valid(page, description="Petugas meminta biaya tambahan di luar ketentuan resmi.")
    page.click("button[type=submit]")
    row = stored(pg_urls["intake"], page.text_content("#tracking-code").strip())
    assert (row.channel, row.unit_hint, row.unit_hint_trusted) == ("web", None, False)


def test_a_ptsp_officer_signs_in_and_enters_a_walk_in_complaint(start_service, page, pg_urls,
                                                                artifacts_dir):
    engine = create_engine(pg_urls["routing"])
    with Session(engine) as session:
        accounts.create(session, "rina", "Rina Petugas", "ptsp_officer", "kata-sandi-rina-1")
        session.commit()
    engine.dispose()
    start_service(RoutingService)
    intake = start_service(IntakeService, **intake_config())

    page.goto(intake.url("/ptsp"))
    assert page.url.endswith("/ptsp/masuk")
    page.fill("#username", "rina")
    page.fill("#password", "salah-sandi-123")
    page.click("button[type=submit]")
    assert "salah" in page.text_content("#login-error")

    page.fill("#password", "kata-sandi-rina-1")
    page.click("button[type=submit]")
    assert page.text_content("#officer").strip() == "Rina Petugas"
    fill_valid(page)
    page.click("form[action='/ptsp'] button[type=submit]")

    code = page.text_content("#tracking-code").strip()
    assert "Dibacakan" in page.text_content("#spelled")
    page.screenshot(path=f"{artifacts_dir}/intake-ptsp-receipt.png")
    row = stored(pg_urls["intake"], code)
    assert (row.channel, row.officer_username) == ("ptsp", "rina")
