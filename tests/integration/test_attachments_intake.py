"""Evidence attachments through intake's web form and PTSP desk, on real RabbitMQ, PostgreSQL,
the local file system and an S3-compatible server (moto's server mode): real files in, cleaned
files stored by hash, references (never bytes) in the database and in complaint_received v2,
refusals with the right status, downloads only through the tracking page's own links, and no
orphaned file after a failure once the sweep has run."""

import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select
from support import amqp
from support.databases import rows
from support.evidence_files import (
    ELF_EXECUTABLE,
    GPS_IFD,
    jpeg_with_gps,
    pdf_bytes,
    png_bomb,
)
from support.intake_channels import intake_config
from support.net import free_port
from support.wait import wait_for

from services.intake import attachments as intake_attachments
from services.intake import handlers
from services.intake.db import attachments, complaints
from services.intake.service import IntakeService
from shared.auth import SESSION_COOKIE, csrf_token, issue_session
from shared.nameko_ext import Database, DatabaseAccess
from shared.storage import LocalBlobStore, S3BlobStore, blob_store_from_config, sha256_of

DESCRIPTION = "Atap ruang kelas MIN 1 Kepahiang bocor sejak sebulan, murid belajar di lorong."


@pytest.fixture
def intake(start_service):
    return start_service(IntakeService, **intake_config())


def count(url, table):
    return rows(url, select(func.count()).select_from(table))[0][0]


def form_fields(intake, **overrides) -> dict:
    intake.get("/")  # sets the form cookie
    fields = {
        "csrf": intake.http.cookies.get("dumas_form"), "category": "pendidikan_madrasah",
        "kecamatan_code": "17.08.05", "description": DESCRIPTION, "confidentiality": "public",
        "name": "Siti Aminah", "phone": "0812-3456-7890",
    }
    fields.update(overrides)
    return fields


def post_form(intake, files, path="/", **overrides):
    return intake.post(path, data=form_fields(intake, **overrides),
                       files=[("lampiran", f) for f in files], allow_redirects=False)


def blobs_of(intake) -> LocalBlobStore:
    return LocalBlobStore(f"{intake.config['DUMAS_VAR_DIR']}/attachments")


def test_a_photo_and_a_pdf_are_stored_cleaned_by_hash_and_announced_as_references(
        intake, pg_urls):
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events", "complaint_received")
    photo, pdf = jpeg_with_gps(), pdf_bytes()

    answer = post_form(intake, [("atap bocor.jpg", photo, "image/jpeg"),
                                ("kwitansi.pdf", pdf, "application/pdf")])

    assert answer.status_code == 303, answer.text
    code = answer.headers["Location"].rsplit("/", 1)[1]
    stored = rows(pg_urls["intake"], select(attachments).order_by(attachments.c.id))
    assert [(a.name, a.media_type, a.channel) for a in stored] == [
        ("atap bocor.jpg", "image/jpeg", "web"), ("kwitansi.pdf", "application/pdf", "web")]
    blobs = blobs_of(intake)
    kept_photo = blobs.get(stored[0].sha256)
    assert sha256_of(kept_photo) == stored[0].sha256 and len(kept_photo) == stored[0].size
    assert GPS_IFD not in Image.open(io.BytesIO(kept_photo)).getexif()
    assert b"KameraHP" not in kept_photo
    assert blobs.get(stored[1].sha256) == pdf  # PDFs are kept as sent
    sent = intake.get(f"/terkirim/{code}").text
    assert "atap bocor.jpg" in sent and "kwitansi.pdf" in sent

    event = wait_for(lambda: capture.drain(), message="complaint_received")[0][0]
    assert event["version"] == 2
    assert event["data"]["attachments"] == [
        {"sha256": a.sha256, "size": a.size, "media_type": a.media_type, "name": a.name}
        for a in stored]
    assert len(json.dumps(event)) < 4000  # references only, never the bytes


def test_the_tracking_page_links_work_only_in_the_browser_that_opened_it(intake):
    answer = post_form(intake, [("bukti.jpg", jpeg_with_gps(), "image/jpeg"),
                                ("kwitansi.pdf", pdf_bytes(), "application/pdf")])
    code = answer.headers["Location"].rsplit("/", 1)[1]

    page = intake.get(f"/lacak/{code}").text
    links = set(re.findall(r'href="(/lacak/[^"]+/lampiran/[^"]+)"', page))
    image_link = re.search(r'<img src="([^"]+)"', page).group(1)
    (pdf_link,) = links - {image_link}
    photo = intake.get(image_link)
    pdf = intake.get(pdf_link)

    by_type = {photo.headers["Content-Type"]: photo, pdf.headers["Content-Type"]: pdf}
    assert set(by_type) == {"image/jpeg", "application/pdf"}
    assert by_type["image/jpeg"].headers["Content-Disposition"].startswith("inline")
    assert by_type["application/pdf"].headers["Content-Disposition"].startswith("attachment")
    for served in (photo, pdf):
        assert served.status_code == 200
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]
    # Another browser (no form cookie of this one), a forged key, a missing key: 404.
    stranger = requests.get(intake.url(image_link), timeout=10)
    forged = intake.get(re.sub(r"k=\d+\.[0-9a-f]+", "k=9999999999.abc", image_link))
    bare = intake.get(image_link.split("?")[0])
    assert [stranger.status_code, forged.status_code, bare.status_code] == [404, 404, 404]


@pytest.mark.parametrize("files,status,code", [
    ([("bom.png", png_bomb(), "image/png")], 413, "image_too_large"),
    ([("foto.jpg", ELF_EXECUTABLE, "image/jpeg")], 415, "unsupported_file_type"),
    ([("besar.jpg", b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024 + 10), "image/jpeg")], 413,
     "file_too_large"),
    ([("rusak.pdf", pdf_bytes()[:300], "application/pdf")], 415, "invalid_pdf"),
    ([(f"foto{i}.jpg", jpeg_with_gps(), "image/jpeg") for i in range(6)], 400,
     "too_many_files"),
])
def test_refused_files_answer_with_status_code_and_indonesian_message_and_save_nothing(
        intake, pg_urls, files, status, code):
    answer = post_form(intake, files)

    assert answer.status_code == status
    assert f'data-code="{code}"' in answer.text
    assert "Pilih kembali berkas lampiran Anda." in answer.text
    assert DESCRIPTION in answer.text  # the rest of the input is kept
    assert count(pg_urls["intake"], complaints) == 0
    assert count(pg_urls["intake"], attachments) == 0


def test_a_body_over_the_total_limit_is_refused_before_it_is_read(intake, pg_urls):
    big = b"\xff\xd8\xff" + b"\x00" * (4 * 1024 * 1024)
    answer = post_form(intake, [(f"f{i}.jpg", big, "image/jpeg") for i in range(4)])

    assert answer.status_code == 413
    assert 'data-code="attachments_too_large"' in answer.text
    assert count(pg_urls["intake"], complaints) == 0


def test_the_ptsp_desk_attaches_files_and_the_receipt_lists_them(intake, pg_urls):
    session, cookie = issue_session("rina", "ptsp_officer", None, "Rina")
    intake.http.cookies.set(SESSION_COOKIE, cookie)

    answer = post_form(intake, [("surat.pdf", pdf_bytes(), "application/pdf")], path="/ptsp",
                       csrf=csrf_token(session))
    refused = post_form(intake, [("virus.jpg", ELF_EXECUTABLE, "image/jpeg")], path="/ptsp",
                        csrf=csrf_token(session))

    assert answer.status_code == 303, answer.text
    receipt = intake.get(answer.headers["Location"]).text
    assert "surat.pdf" in receipt
    assert [(a.channel, a.name) for a in rows(pg_urls["intake"], select(attachments))] == [
        ("ptsp", "surat.pdf")]
    assert refused.status_code == 415 and 'data-code="unsupported_file_type"' in refused.text


def test_a_failure_after_upload_leaves_no_complaint_and_the_sweep_removes_the_file(
        intake, pg_urls, monkeypatch):
    kept = post_form(intake, [("lama.pdf", pdf_bytes("arsip lama"), "application/pdf")])
    assert kept.status_code == 303

    def database_fails(*args, **kwargs):
        raise RuntimeError("database went away mid-request")

    monkeypatch.setattr(handlers, "submit_complaint", database_fails)
    orphan_photo = jpeg_with_gps(color=(1, 2, 3))
    failed = post_form(intake, [("yatim.jpg", orphan_photo, "image/jpeg")],
                       description="Pengaduan yang gagal disimpan karena basis data mati.")
    monkeypatch.undo()

    assert failed.status_code == 500
    assert count(pg_urls["intake"], complaints) == 1  # only the earlier one
    blobs = blobs_of(intake)
    stored = {sha for sha, _ in blobs.list()}
    assert len(stored) == 2  # the orphan is on disk until the sweep
    referenced = {a.sha256 for a in rows(pg_urls["intake"], select(attachments))}

    provider = next(d for d in intake.container.dependencies if isinstance(d, Database))
    uow = DatabaseAccess(provider).unit_of_work
    # Within the grace period nothing goes (its complaint may be being written right now).
    assert intake_attachments.sweep(uow, blobs) == []
    removed = intake_attachments.sweep(uow, blobs, now=datetime.now(UTC) + timedelta(hours=2))

    assert set(removed) == stored - referenced and len(removed) == 1
    assert {sha for sha, _ in blobs.list()} == referenced


# -- S3-compatible storage ------------------------------------------------------------------------


@pytest.fixture
def s3_server(tmp_path):
    """moto's S3 server on a free port, as a separate process."""
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "moto.log").read_text())
        try:
            return requests.get(url + "/moto-api/", timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=30, interval=0.2, message="moto server up")
        yield {"DUMAS_STORAGE_BACKEND": "s3", "DUMAS_S3_ENDPOINT_URL": url,
               "DUMAS_S3_BUCKET": "dumas-lampiran", "DUMAS_S3_ACCESS_KEY_ID": "minio",
               "DUMAS_S3_SECRET_ACCESS_KEY": "minio-secret", "DUMAS_S3_REGION": "us-east-1"}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_the_s3_backend_stores_by_hash_lists_and_deletes(s3_server):
    store = blob_store_from_config(s3_server)
    assert isinstance(store, S3BlobStore)
    store.ensure_bucket()
    data = pdf_bytes()

    first, again = store.put(data), store.put(data)

    assert (first.created, again.created) == (True, False)
    assert first.sha256 == sha256_of(data) and store.get(first.sha256) == data
    assert [sha for sha, _ in store.list()] == [first.sha256]
    assert store.head(first.sha256)["Content-Type"] == "application/octet-stream"
    assert store.head("0" * 64) is None
    store.delete(first.sha256)
    assert not store.exists(first.sha256)


def test_the_web_form_stores_attachments_in_s3_when_configured(start_service, s3_server,
                                                               pg_urls):
    blob_store_from_config(s3_server).ensure_bucket()
    intake = start_service(IntakeService, **intake_config(), **s3_server)

    answer = post_form(intake, [("bukti.jpg", jpeg_with_gps(), "image/jpeg")])

    assert answer.status_code == 303, answer.text
    (row,) = rows(pg_urls["intake"], select(attachments))
    kept = blob_store_from_config(s3_server).get(row.sha256)
    assert GPS_IFD not in Image.open(io.BytesIO(kept)).getexif()
    code = answer.headers["Location"].rsplit("/", 1)[1]
    link = re.search(r'href="(/lacak/[^"]+/lampiran/[^"]+)"', intake.get(f"/lacak/{code}").text)
    assert intake.get(link.group(1)).content == kept
