"""Evidence attachments in the unit inbox: routing learns the references from intake's events
(complaint_received v2, complaint_attachment_added), shows thumbnails on the complaint page, and
serves a file only to a signed-in person who may see that complaint (the inbox's own scoping:
another unit gets 404), through a link bound to the session that expires with it.

The bytes are read from the same blob store intake writes (shared/storage.py, same
DUMAS_STORAGE_BACKEND / DUMAS_S3_* / DUMAS_VAR_DIR settings)."""

from __future__ import annotations

from collections import OrderedDict

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from werkzeug.wrappers import Response

from services.routing.casework import NotFound, _load
from services.routing.db import attachments
from services.routing.domain import lifecycle
from services.routing.metrics import THUMBNAILS
from shared import auth
from shared.db import dialect_insert, utcnow
from shared.offload import off_the_hub
from shared.storage import (
    IMAGE_MEDIA_TYPES,
    BlobNotFound,
    blob_store_from_config,
    download_headers,
    link_secret,
    link_valid,
    sign_link,
    thumbnail,
)
from shared.web import HttpError

LABELS = {"image": "Foto", "audio": "Rekaman suara", "video": "Video", "document": "Dokumen"}


class AttachmentStore(DependencyProvider):
    """The blob store and the link key, one per service process."""

    def setup(self):
        self.tools = Tools(dict(self.container.config))

    def get_dependency(self, worker_ctx):
        return self.tools


class Tools:
    def __init__(self, config):
        self.blobs = blob_store_from_config(config)
        self.secret = link_secret("routing")
        self.thumbnails = ThumbnailCache()


class ThumbnailCache:
    """Inbox thumbnails, made once per process and kept while they fit in `max_bytes` (least
    recently used dropped first). Blobs are content-addressed, so a thumbnail never goes stale.

    A complaint page shows every image's thumbnail to each person who opens it; without the
    cache each view read the whole photo from the blob store and decoded it again.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024, make=thumbnail):
        self.max_bytes = max_bytes
        self._make = make
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0

    def get(self, sha256: str, media_type: str, load) -> tuple[bytes, str]:
        """The thumbnail of blob `sha256` (`load()` gives its bytes when it is not cached).
        Raises ValueError or OSError for what is not a decodable image (nothing cached)."""
        found = self._items.get(sha256)
        if found is not None:
            self._items.move_to_end(sha256)
            THUMBNAILS.labels("hit").inc()
            return found
        made = off_the_hub(self._make, load(), media_type)
        THUMBNAILS.labels("made").inc()
        size = len(made[0])
        if size <= self.max_bytes:
            if sha256 not in self._items:  # another greenthread may have made it meanwhile
                self._items[sha256] = made
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= len(dropped)
        return made


_STATEMENTS: dict = {}


def _insert_attachment(session):
    """INSERT ... ON CONFLICT DO NOTHING into attachments, built once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _STATEMENTS.get(dialect)
    if stmt is None:
        stmt = _STATEMENTS[dialect] = dialect_insert(session, attachments).on_conflict_do_nothing()
    return stmt


def record(uow_factory, complaint_id: str, refs: list[dict], at=None) -> int:
    """Remember attachment references of a complaint; idempotent (redeliveries add nothing).
    Independent of the routing decision, so event order does not matter."""
    if not refs:
        return 0
    with uow_factory() as uow:
        added = record_in(uow, complaint_id, refs, at)
        uow.commit()
    return added


def record_in(uow, complaint_id: str, refs: list[dict], at=None) -> int:
    """`record` inside the caller's unit of work (routing's batched complaint_received)."""
    added = 0
    for row in rows(complaint_id, refs, at):
        added += uow.session.execute(_insert_attachment(uow.session), row).rowcount
    return added


def rows(complaint_id: str, refs: list[dict], at=None) -> list[dict]:
    """The attachments rows `record_in` inserts, one per reference."""
    return [{"complaint_id": str(complaint_id), "sha256": ref["sha256"], "size": ref["size"],
             "media_type": ref["media_type"], "name": ref["name"], "added_at": at or utcnow()}
            for ref in refs]


def on_received(uow_factory, event) -> int:
    return record(uow_factory, event.data["complaint_id"], event.data.get("attachments") or [],
                  event.data.get("received_at"))


def on_added(uow_factory, event) -> int:
    return record(uow_factory, event.data["complaint_id"], [event.data["attachment"]],
                  event.data.get("at"))


def _kind(media_type: str) -> str:
    if media_type in IMAGE_MEDIA_TYPES:
        return "image"
    return media_type.split("/", 1)[0] if media_type.startswith(("audio/", "video/")) \
        else "document"


def for_page(session, tools: Tools, user: auth.Session, complaint_id: str) -> list[dict]:
    """The attachments of a complaint the user may see, with links for this session."""
    rows = session.execute(
        select(attachments).where(attachments.c.complaint_id == str(complaint_id))
        .order_by(attachments.c.id)
    ).all()
    out = []
    for row in rows:
        key = sign_link(tools.secret, str(complaint_id), row.sha256, user.nonce,
                        not_after=user.expires_at)
        url = f"/inbox/lampiran/{complaint_id}/{row.sha256}?k={key}"
        kind = _kind(row.media_type)
        out.append({"name": row.name, "size": row.size, "media_type": row.media_type,
                    "kind": kind, "label": LABELS[kind], "url": url,
                    "thumb_url": url + "&ukuran=kecil" if kind == "image" else None})
    return out


def serve(session, tools: Tools, user: auth.Session | None, complaint_id: str, sha256: str,
          key: str | None, small: bool = False) -> Response:
    """One file, authorised for this request: a valid link of this session AND a person who
    may see the complaint now. Anything else is 404 (no hint whether the file exists)."""
    missing = HttpError(404, "not_found", "Lampiran tidak ditemukan.")
    if user is None or user.role not in lifecycle.INBOX_ROLES:
        raise missing
    if not link_valid(tools.secret, key, str(complaint_id), sha256, user.nonce):
        raise missing
    row = _load(session, complaint_id, lock=False)
    if row is None or not lifecycle.can_view(user.role, user.unit_code, row["unit_code"],
                                             row["shadow_unit_code"]):
        raise missing
    found = session.execute(
        select(attachments).where(attachments.c.complaint_id == row["complaint_id"],
                                  attachments.c.sha256 == sha256)
    ).first()
    if found is None:
        raise missing
    media_type, name = found.media_type, found.name
    try:
        if small and media_type in IMAGE_MEDIA_TYPES:
            data, media_type = tools.thumbnails.get(sha256, media_type,
                                                    lambda: tools.blobs.get(sha256))
        else:
            data = tools.blobs.get(sha256)
    except (BlobNotFound, ValueError, OSError):
        raise missing from None
    return Response(data, headers=download_headers(media_type, name))


__all__ = ["AttachmentStore", "NotFound", "ThumbnailCache", "for_page", "on_added", "on_received",
           "serve"]
