"""shared/storage.py without services: the content-addressed local store, the orphan sweep's
grace period, download links bound to a session and its expiry, and the serving headers."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.storage import (
    BlobNotFound,
    LocalBlobStore,
    blob_store_from_config,
    download_headers,
    link_valid,
    sha256_of,
    sign_link,
    sweep_orphans,
)

SECRET = b"k" * 32
CID = "6f1c2a9e-0000-4000-8000-000000000001"
SHA = "ab" * 32


def test_the_same_bytes_are_one_object_under_their_hash(tmp_path):
    store = LocalBlobStore(tmp_path)

    first, again = store.put(b"bukti"), store.put(b"bukti")

    assert (first.created, again.created) == (True, False)
    assert first.sha256 == sha256_of(b"bukti") and store.get(first.sha256) == b"bukti"
    assert [sha for sha, _ in store.list()] == [first.sha256]
    assert (tmp_path / first.sha256[:2] / first.sha256[2:4] / first.sha256).stat().st_mode \
        & 0o077 == 0


@pytest.mark.parametrize("bad", ["../../etc/passwd", "AB" * 32, "", "x" * 64])
def test_anything_but_a_sha256_is_not_found(tmp_path, bad):
    with pytest.raises(BlobNotFound):
        LocalBlobStore(tmp_path).get(bad)


def test_the_sweep_keeps_referenced_and_recent_files(tmp_path):
    store = LocalBlobStore(tmp_path)
    kept, orphan = store.put(b"dipakai").sha256, store.put(b"yatim").sha256
    now = datetime.now(UTC)

    assert sweep_orphans(store, {kept}, older_than=now - timedelta(hours=1)) == []
    assert sweep_orphans(store, {kept}, older_than=now + timedelta(seconds=1)) == [orphan]
    assert [sha for sha, _ in store.list()] == [kept]


def test_a_link_works_for_its_session_only_and_not_after_it_expires():
    key = sign_link(SECRET, CID, SHA, "nonce-a", lifetime=900, now=1000)

    assert link_valid(SECRET, key, CID, SHA, "nonce-a", now=1000 + 899)
    assert not link_valid(SECRET, key, CID, SHA, "nonce-a", now=1000 + 901)
    assert not link_valid(SECRET, key, CID, SHA, "nonce-b", now=1001)  # another session
    assert not link_valid(SECRET, key, CID, "cd" * 32, "nonce-a", now=1001)  # another file
    assert not link_valid(b"x" * 32, key, CID, SHA, "nonce-a", now=1001)
    assert not link_valid(SECRET, key, CID, SHA, "", now=1001)
    expires, mac = key.split(".")
    assert not link_valid(SECRET, f"{int(expires) + 9999}.{mac}", CID, SHA, "nonce-a", now=1001)


def test_a_link_never_outlives_the_session_it_was_made_for():
    key = sign_link(SECRET, CID, SHA, "nonce-a", lifetime=900, not_after=1100, now=1000)

    assert link_valid(SECRET, key, CID, SHA, "nonce-a", now=1099)
    assert not link_valid(SECRET, key, CID, SHA, "nonce-a", now=1101)


@pytest.mark.parametrize("media_type,disposition,served_as", [
    ("image/jpeg", "inline", "image/jpeg"),
    ("application/pdf", "attachment", "application/pdf"),
    ("audio/ogg", "attachment", "audio/ogg"),
    ("text/html", "attachment", "application/octet-stream"),
])
def test_files_are_served_so_no_browser_runs_them(media_type, disposition, served_as):
    headers = download_headers(media_type, 'bukti "é".jpg')

    assert headers["Content-Type"] == served_as
    assert headers["Content-Disposition"].startswith(disposition)
    assert "filename*=UTF-8''bukti%20%22%C3%A9%22.jpg" in headers["Content-Disposition"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_the_backend_comes_from_configuration(tmp_path):
    local = blob_store_from_config({"DUMAS_VAR_DIR": str(tmp_path)})
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "attachments"
    with pytest.raises(ValueError):
        blob_store_from_config({"DUMAS_STORAGE_BACKEND": "s3", "DUMAS_S3_BUCKET": ""})
    with pytest.raises(ValueError):
        blob_store_from_config({"DUMAS_STORAGE_BACKEND": "ftp"})
