"""Evidence attachments at intake's edge: multipart uploads (web form, PTSP desk), the blob
store, WhatsApp media downloads through the Cloud API, download links, and the orphan sweep.

Order of writes (docs/attachments.md): every file is checked, re-encoded and stored first,
keyed by its SHA-256; then the complaint and its attachment references are written in one
transaction. A failure in between leaves only unreferenced blobs, which :func:`sweep` deletes
after a grace period; nothing half-saved is ever visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select, update
from werkzeug.exceptions import RequestEntityTooLarge

from services.intake import handlers
from services.intake.db import complaints, media_downloads
from services.intake.domain import attachments as rules
from services.intake.metrics import (
    ATTACHMENT_BYTES,
    ATTACHMENTS,
    MEDIA_DOWNLOADS,
    ORPHANS_SWEPT,
)
from shared.db import dialect_insert
from shared.storage import BlobStore, sweep_orphans

log = logging.getLogger(__name__)

FIELD = "lampiran"
FORM_OVERHEAD = 256 * 1024  # the text fields and multipart boundaries around the files
MAX_FORM_FIELDS_BYTES = 64 * 1024
SWEEP_GRACE = timedelta(hours=1)
MEDIA_ATTEMPTS = 5
MEDIA_BACKOFF = (2, 10, 60, 300)  # seconds before attempts 2..5
MEDIA_TIMEOUT = (3.05, 15)  # connect, read (seconds) for each Cloud API call


# -- uploads ----------------------------------------------------------------------------------


def read_multipart(request) -> tuple[dict, list[tuple[str | None, bytes]]]:
    """The form fields and the uploaded files ``(name, bytes)`` of a form post (multipart or
    urlencoded). Size and count are checked before anything is decoded."""
    length = request.content_length
    if length is not None and length > rules.MAX_TOTAL_BYTES + FORM_OVERHEAD:
        raise rules.total_too_large()
    request.max_content_length = rules.MAX_TOTAL_BYTES + FORM_OVERHEAD
    request.max_form_memory_size = MAX_FORM_FIELDS_BYTES
    request.max_form_parts = 200
    try:
        form = request.form
        uploads = [f for f in request.files.getlist(FIELD) if f and (f.filename or "")]
    except RequestEntityTooLarge:
        raise rules.total_too_large() from None
    files = []
    for upload in uploads:
        data = upload.stream.read(rules.MAX_FILE_BYTES + 1)
        files.append((upload.filename, data))
    try:
        if len(uploads) > rules.MAX_FILES:
            raise rules.too_many()
        rules.check_batch([(name, len(data)) for name, data in files])
    except rules.AttachmentRefused as exc:
        exc.form = form  # the page shows the rest of the input again
        raise
    return form, files


def store_files(blobs: BlobStore, files: list[tuple[str | None, bytes]], channel: str,
                max_bytes: int = rules.MAX_FILE_BYTES) -> list[dict]:
    """Check and store every file (all or none accepted); their references, in order.

    A refusal raises AttachmentRefused before any later file is stored; files stored before it
    are unreferenced and go with the next sweep.
    """
    prepared = []
    for name, data in files:
        try:
            prepared.append(rules.prepare(data, name, max_bytes=max_bytes))
        except rules.AttachmentRefused as exc:
            ATTACHMENTS.labels(channel, exc.code).inc()
            raise
    refs, seen = [], set()
    for item in prepared:
        stored = blobs.put(item.data)
        ATTACHMENTS.labels(channel, "accepted").inc()
        if stored.created:
            ATTACHMENT_BYTES.labels(channel).inc(stored.size)
        if stored.sha256 in seen:
            continue  # the same file twice in one submission: attached once
        seen.add(stored.sha256)
        refs.append(rules.reference(item, stored.sha256))
    return refs


def view(ref: dict) -> dict:
    """What a page shows of an attachment."""
    return {**ref, "kind": rules.kind_of(ref["media_type"]),
            "label": rules.LABELS[rules.kind_of(ref["media_type"])],
            "size_text": rules.human_size(ref["size"])}


def sweep(uow_factory, blobs: BlobStore, now: datetime | None = None,
          grace: timedelta = SWEEP_GRACE) -> list[str]:
    """Delete stored files that no complaint refers to and that are older than ``grace``."""
    now = now or datetime.now(UTC)
    with uow_factory() as uow:
        referenced = handlers.referenced_hashes(uow.session)
    removed = sweep_orphans(blobs, referenced, older_than=now - grace)
    if removed:
        ORPHANS_SWEPT.inc(len(removed))
        log.info("attachment sweep removed %d unreferenced files", len(removed))
    return removed


# -- WhatsApp media ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudApi:
    """Where the WhatsApp Cloud API's media endpoints are, and the bearer token for them."""

    base_url: str
    version: str
    token: str

    def media_url(self, media_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{self.version}/{media_id}"


class MediaUnavailable(RuntimeError):
    """The Cloud API did not give the file now (network, 5xx, 429): try again later."""


class MediaGone(RuntimeError):
    """The Cloud API will never give it (unknown id, 4xx): stop trying."""


def fetch_media(api: CloudApi, media_id: str, max_bytes: int, session=None) -> bytes:
    """``GET /{media-id}`` (JSON with a short-lived ``url``), then ``GET url``, both with the
    bearer token; the body is read up to ``max_bytes`` + 1."""
    http = session or requests
    headers = {"Authorization": f"Bearer {api.token}"}
    try:
        meta = http.get(api.media_url(media_id), headers=headers, timeout=MEDIA_TIMEOUT)
        _raise_for(meta)
        url = meta.json().get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaGone("media lookup without url")
        with http.get(url, headers=headers, timeout=MEDIA_TIMEOUT, stream=True) as answer:
            _raise_for(answer)
            declared = answer.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise rules.too_large("WhatsApp", max_bytes)
            body = answer.raw.read(max_bytes + 1, decode_content=True)
    except requests.RequestException as exc:
        raise MediaUnavailable(type(exc).__name__) from exc
    except ValueError as exc:  # a lookup answer that is not JSON
        if isinstance(exc, rules.AttachmentRefused):
            raise
        raise MediaUnavailable("lookup answer is not JSON") from exc
    return body


def _raise_for(answer) -> None:
    if answer.status_code == 200:
        return
    if answer.status_code == 429 or answer.status_code >= 500:
        raise MediaUnavailable(f"HTTP {answer.status_code}")
    raise MediaGone(f"HTTP {answer.status_code}")


def enqueue_media(uow, message_id: str, complaint_id: str, media_id: str, kind: str,
                  filename: str | None, now: datetime) -> bool:
    """Queue one WhatsApp media download in the caller's transaction; False if queued before."""
    stmt = (
        dialect_insert(uow.session, media_downloads)
        .values(message_id=message_id, complaint_id=complaint_id, media_id=media_id[:200],
                kind=kind, filename=(filename or None) and filename[:200], state="pending",
                attempts=0, next_at=now, created_at=now)
        .on_conflict_do_nothing()
    )
    return uow.session.execute(stmt).rowcount == 1


def _claim_due(uow_factory, now: datetime) -> dict | None:
    """Take one due download (pending, or running with an expired lease after a crash)."""
    with uow_factory() as uow:
        row = uow.session.execute(
            select(media_downloads)
            .where(media_downloads.c.state.in_(("pending", "running")),
                   media_downloads.c.next_at <= now)
            .order_by(media_downloads.c.next_at)
            .limit(1)
        ).first()
        if row is None:
            return None
        # Conditional update: of two intake instances, the one whose UPDATE hit the row owns it.
        lease = now + timedelta(seconds=MEDIA_TIMEOUT[1] * 3)
        taken = uow.session.execute(
            update(media_downloads)
            .where(media_downloads.c.message_id == row.message_id,
                   media_downloads.c.next_at == row.next_at,
                   media_downloads.c.state == row.state)
            .values(state="running", next_at=lease, attempts=row.attempts + 1)
        ).rowcount
        uow.commit()
    return dict(row._mapping, attempts=row.attempts + 1) if taken else None


def _finish(uow_factory, message_id: str, state: str, error: str | None = None,
            next_at: datetime | None = None) -> None:
    values = {"state": state, "last_error": error and error[:200]}
    if next_at is not None:
        values["next_at"] = next_at
    with uow_factory() as uow:
        uow.session.execute(update(media_downloads)
                            .where(media_downloads.c.message_id == message_id).values(**values))
        uow.commit()


def process_media(uow_factory, blobs: BlobStore, api: CloudApi, now: datetime | None = None,
                  limit: int = 10, max_bytes: int = rules.MAX_WHATSAPP_MEDIA_BYTES,
                  session=None) -> dict[str, int]:
    """Download, check, store and attach due WhatsApp media (called by intake's media timer).
    No transaction is open while the Cloud API is called."""
    outcomes: dict[str, int] = {}
    for _ in range(limit):
        now_i = now or datetime.now(UTC)
        job = _claim_due(uow_factory, now_i)
        if job is None:
            break
        outcome = _one_download(uow_factory, blobs, api, job, now_i, max_bytes, session)
        MEDIA_DOWNLOADS.labels(outcome).inc()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _one_download(uow_factory, blobs, api, job, now, max_bytes, session) -> str:
    message_id = job["message_id"]
    try:
        data = fetch_media(api, job["media_id"], max_bytes, session)
        name = job["filename"] or f"whatsapp-{job['kind']}"
        refs = store_files(blobs, [(name, data)], "whatsapp", max_bytes=max_bytes)
    except MediaUnavailable as exc:
        if job["attempts"] >= MEDIA_ATTEMPTS:
            _finish(uow_factory, message_id, "failed", str(exc))
            return "failed"
        delay = MEDIA_BACKOFF[min(job["attempts"], len(MEDIA_BACKOFF)) - 1]
        _finish(uow_factory, message_id, "pending", str(exc), now + timedelta(seconds=delay))
        return "retry"
    except MediaGone as exc:
        _finish(uow_factory, message_id, "failed", str(exc))
        return "failed"
    except rules.AttachmentRefused as exc:
        _finish(uow_factory, message_id, "refused", exc.code)
        return "refused"
    added = handlers.attach(uow_factory, job["complaint_id"], refs[0], "whatsapp", now)
    _finish(uow_factory, message_id, "done")
    return "attached" if added else "duplicate"


def complaint_exists(session, complaint_id: str) -> bool:
    return session.execute(
        select(complaints.c.id).where(complaints.c.id == complaint_id)
    ).first() is not None


def media_follow_up(uow_factory, complaint_id: str, item, key: str,
                    now: datetime | None = None) -> str | None:
    """A WhatsApp file from someone with an open complaint: its caption (if any) becomes added
    information, its download is queued, and the message id is remembered, in one transaction.
    None when the complaint was closed meanwhile. Raises handlers.IdempotencyRace for a
    redelivery."""
    now = now or datetime.now(UTC)
    caption = (item.caption or "").strip()[:4000]
    with uow_factory() as uow:
        row = uow.session.execute(
            select(complaints.c.id, complaints.c.tracking_code, complaints.c.status)
            .where(complaints.c.id == complaint_id).with_for_update()
        ).one()
        if row.status in handlers.CLOSED:
            return None
        handlers._remember(uow, "whatsapp", key, "-", 200,
                           {"outcome": "media_queued", "tracking_code": row.tracking_code},
                           row.id, now)
        if caption:
            handlers._message(uow, row.id, "info_added", caption, "whatsapp", now)
            uow.publish(handlers.build_event(
                "complaint_info_added",
                {"complaint_id": row.id, "tracking_code": row.tracking_code,
                 "channel": "whatsapp", "text": caption, "at": now},
                correlation_id=row.id, occurred_at=now,
            ))
        enqueue_media(uow, item.message_id, row.id, item.media_id, item.kind, item.filename, now)
        uow.commit()
    return row.tracking_code


MEDIA_DESCRIPTION = {
    "image": "foto", "document": "dokumen", "audio": "rekaman suara", "video": "video",
}


def description_for(item) -> str:
    """The text of a complaint a WhatsApp file starts: its caption, or a plain note."""
    caption = (item.caption or "").strip()
    if len(caption) >= 10:
        return caption[:4000]
    note = (f"Pengaduan melalui WhatsApp berupa {MEDIA_DESCRIPTION[item.kind]} tanpa "
            "keterangan tertulis.")
    return f"{caption} ({note})" if caption else note
