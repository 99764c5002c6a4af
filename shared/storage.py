"""Blob storage for evidence attachments, behind one small interface.

Files are stored under their SHA-256 (content addressing): storing the same bytes twice is one
object, a reference is just the hash, and nothing can overwrite a stored file with other bytes.
Databases and events hold only references (hash, size, media type, sanitised name), never bytes.

Backends, chosen by configuration (service config or environment, same names):

- ``DUMAS_STORAGE_BACKEND=local`` (default): files under ``<DUMAS_VAR_DIR>/attachments/``.
- ``DUMAS_STORAGE_BACKEND=s3``: an S3-compatible bucket (MinIO in docker-compose) with
  ``DUMAS_S3_ENDPOINT_URL``, ``DUMAS_S3_BUCKET``, ``DUMAS_S3_ACCESS_KEY_ID``,
  ``DUMAS_S3_SECRET_ACCESS_KEY``, ``DUMAS_S3_REGION`` (default ``us-east-1``).

Objects are stored as ``application/octet-stream``: the bucket is never a place browsers fetch
from; services read the bytes and serve them with their own safe headers (docs/attachments.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX = "attachments/"


class BlobNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool  # False: the same bytes were stored already


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise BlobNotFound(str(sha256)[:80])
    return sha256


class BlobStore(Protocol):
    def put(self, data: bytes) -> StoredBlob: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def list(self) -> Iterator[tuple[str, datetime]]:
        """Every stored hash with the time it was stored (for the orphan sweep)."""
        ...


class LocalBlobStore:
    """``<root>/ab/cd/<sha256>``; written to a temporary file and renamed into place."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        sha256 = _checked(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> StoredBlob:
        digest = sha256_of(data)
        path = self._path(digest)
        if path.exists():
            os.utime(path)  # refresh: a sweep running now must not take it as an old orphan
            return StoredBlob(digest, len(data), False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{digest}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return StoredBlob(digest, len(data), True)

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    def exists(self, sha256: str) -> bool:
        try:
            return self._path(sha256).is_file()
        except BlobNotFound:
            return False

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[tuple[str, datetime]]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*"):
            if _SHA256.match(path.name):
                yield path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC)


class S3BlobStore:
    """An S3-compatible bucket (AWS S3, MinIO, ...), objects ``attachments/<sha256>``, path-style
    URLs. A small Signature V4 client on ``requests``: botocore builds an SSL context at start
    that recurses forever under eventlet's monkey-patching, and five calls do not need an SDK."""

    def __init__(self, endpoint_url: str | None, bucket: str, access_key_id: str | None,
                 secret_access_key: str | None, region: str = "us-east-1",
                 timeout: tuple[float, float] = (5, 30)):
        self.endpoint = (endpoint_url or f"https://s3.{region}.amazonaws.com").rstrip("/")
        self.bucket = bucket
        self.access_key_id = access_key_id or ""
        self.secret_access_key = secret_access_key or ""
        self.region = region
        self.timeout = timeout
        import requests

        self.http = requests.Session()

    # -- signing (AWS Signature Version 4) --

    def _request(self, method: str, key: str = "", query: dict | None = None,
                 body: bytes = b"", headers: dict | None = None):
        path = f"/{self.bucket}" + (f"/{quote(key, safe='/')}" if key else "")
        query = query or {}
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}"
            for k, v in sorted(query.items()))
        now = datetime.now(UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = urlsplit(self.endpoint).netloc
        payload_hash = hashlib.sha256(body).hexdigest()
        signed = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed.update({k.lower(): v for k, v in (headers or {}).items()})
        names = sorted(signed)
        canonical = "\n".join([
            method, path, canonical_query,
            "".join(f"{n}:{str(signed[n]).strip()}\n" for n in names), ";".join(names),
            payload_hash,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key_bytes = ("AWS4" + self.secret_access_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        send = {k: v for k, v in signed.items() if k != "host"}
        send["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}")
        url = self.endpoint + path + (f"?{canonical_query}" if canonical_query else "")
        return self.http.request(method, url, data=body or None, headers=send,
                                 timeout=self.timeout)

    def _key(self, sha256: str) -> str:
        return PREFIX + _checked(sha256)

    @staticmethod
    def _ok(answer, *allowed: int) -> None:
        if answer.status_code not in (200, 204, *allowed):
            raise S3Error(f"S3 {answer.request.method} answered {answer.status_code}: "
                          f"{answer.text[:200]}")

    # -- the store --

    def put(self, data: bytes) -> StoredBlob:
        digest = sha256_of(data)
        existed = self.exists(digest)
        # Re-put also when it exists: it refreshes LastModified for the orphan sweep's grace.
        answer = self._request("PUT", self._key(digest), body=data,
                               headers={"Content-Type": "application/octet-stream"})
        self._ok(answer)
        return StoredBlob(digest, len(data), not existed)

    def get(self, sha256: str) -> bytes:
        answer = self._request("GET", self._key(sha256))
        if answer.status_code == 404:
            raise BlobNotFound(sha256)
        self._ok(answer)
        return answer.content

    def head(self, sha256: str):
        answer = self._request("HEAD", self._key(sha256))
        if answer.status_code == 404:
            return None
        self._ok(answer)
        return answer.headers  # case-insensitive

    def exists(self, sha256: str) -> bool:
        try:
            return self.head(sha256) is not None
        except BlobNotFound:
            return False

    def delete(self, sha256: str) -> None:
        self._ok(self._request("DELETE", self._key(sha256)), 404)

    def list(self) -> Iterator[tuple[str, datetime]]:
        from xml.etree import ElementTree

        token = None
        while True:
            query = {"list-type": "2", "prefix": PREFIX}
            if token:
                query["continuation-token"] = token
            answer = self._request("GET", query=query)
            self._ok(answer)
            root = ElementTree.fromstring(answer.content)  # noqa: S314 - our own bucket
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            for item in root.iter(f"{ns}Contents"):
                name = (item.findtext(f"{ns}Key") or "")[len(PREFIX):]
                modified = item.findtext(f"{ns}LastModified") or ""
                if _SHA256.match(name):
                    yield name, datetime.fromisoformat(modified.replace("Z", "+00:00"))
            if (root.findtext(f"{ns}IsTruncated") or "").lower() != "true":
                return
            token = root.findtext(f"{ns}NextContinuationToken")

    def ensure_bucket(self) -> None:
        """Create the bucket when missing (development and tests; production provisions it)."""
        if self._request("HEAD").status_code == 200:
            return
        self._ok(self._request("PUT"), 409)


class S3Error(RuntimeError):
    pass


def _get(config: Mapping | None, name: str, default: str | None = None) -> str | None:
    value = (config or {}).get(name)
    if value in (None, ""):
        value = os.environ.get(name, default)
    return value


def blob_store_from_config(config: Mapping | None = None) -> BlobStore:
    """The store a service's configuration (or the environment) asks for."""
    backend = (_get(config, "DUMAS_STORAGE_BACKEND", "local") or "local").lower()
    if backend == "local":
        root = Path(_get(config, "DUMAS_VAR_DIR", "var") or "var") / "attachments"
        return LocalBlobStore(root)
    if backend == "s3":
        bucket = _get(config, "DUMAS_S3_BUCKET")
        if not bucket:
            raise ValueError("DUMAS_STORAGE_BACKEND=s3 needs DUMAS_S3_BUCKET")
        return S3BlobStore(
            _get(config, "DUMAS_S3_ENDPOINT_URL"), bucket,
            _get(config, "DUMAS_S3_ACCESS_KEY_ID"), _get(config, "DUMAS_S3_SECRET_ACCESS_KEY"),
            _get(config, "DUMAS_S3_REGION", "us-east-1") or "us-east-1",
        )
    raise ValueError(f"unknown DUMAS_STORAGE_BACKEND {backend!r} (local or s3)")


def sweep_orphans(store: BlobStore, referenced: set[str], *, older_than: datetime) -> list[str]:
    """Delete stored blobs no reference points to and that were stored before ``older_than``
    (the grace period covers uploads whose complaint is being written right now)."""
    removed = []
    for sha256, stored_at in list(store.list()):
        if sha256 not in referenced and stored_at < older_than:
            store.delete(sha256)
            removed.append(sha256)
    return removed


# -- serving ----------------------------------------------------------------------------------
# Both intake (complainant) and routing (units, desk, auditors) serve stored files; they share
# these rules so nothing uploaded is ever served with a type a browser would run.

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
LINK_LIFETIME = 15 * 60


def link_secret(scope: str) -> bytes:
    """The key signing download links of one service (derived from the session secret)."""
    from shared.auth import session_secret

    return hmac.new(session_secret(), f"attachment-links:{scope}".encode(),
                    hashlib.sha256).digest()


def _link_mac(secret: bytes, complaint_id: str, sha256: str, expires: int, binding: str) -> str:
    message = f"{complaint_id}|{sha256}|{expires}|{binding}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:40]


def sign_link(secret: bytes, complaint_id: str, sha256: str, binding: str, *,
              lifetime: int = LINK_LIFETIME, not_after: float | None = None,
              now: float | None = None) -> str:
    """A short-lived key for one file of one complaint, bound to the viewer's session (or the
    browser's form cookie): ``<expires>.<mac>``. Not guessable, useless in another browser."""
    now = time.time() if now is None else now
    expires = int(now + lifetime)
    if not_after is not None:
        expires = min(expires, int(not_after))
    return f"{expires}.{_link_mac(secret, complaint_id, sha256, expires, binding)}"


def link_valid(secret: bytes, key: str | None, complaint_id: str, sha256: str, binding: str,
               *, now: float | None = None) -> bool:
    if not key or not binding or "." not in key or len(key) > 80:
        return False
    expires, mac = key.split(".", 1)
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return False
    expected = _link_mac(secret, complaint_id, sha256, int(expires), binding)
    return hmac.compare_digest(mac, expected)


def download_headers(media_type: str, name: str, *, inline_images: bool = True) -> dict:
    """Headers for serving a stored file: images inline as image/*, everything else as a
    download; never sniffed, sandboxed, not cached by shared caches."""
    inline = inline_images and media_type in IMAGE_MEDIA_TYPES
    ascii_name = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in name)
    disposition = "inline" if inline else "attachment"
    return {
        "Content-Type": media_type if media_type in _SERVABLE else "application/octet-stream",
        "Content-Disposition": (f'{disposition}; filename="{ascii_name}"; '
                                f"filename*=UTF-8''{quote(name, safe='')}"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Referrer-Policy": "no-referrer",
    }


_SERVABLE = frozenset({*IMAGE_MEDIA_TYPES, "application/pdf", "audio/ogg", "audio/mpeg",
                       "audio/mp4", "audio/aac", "audio/amr", "video/mp4"})


def thumbnail(data: bytes, media_type: str, max_side: int = 240) -> tuple[bytes, str]:
    """A small JPEG (or PNG with transparency) of a stored image, for inbox thumbnails."""
    import io

    from PIL import Image

    if media_type not in IMAGE_MEDIA_TYPES:
        raise ValueError("not an image")
    image = Image.open(io.BytesIO(data))
    if image.size[0] * image.size[1] > 40_000_000:
        raise ValueError("image too large")
    # A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least this big:
    # several times less work than decoding a phone photo at full size to shrink it after.
    image.draft("RGB", (max_side, max_side))
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.convert("RGBA").save(out, "PNG")
        return out.getvalue(), "image/png"
    image.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue(), "image/jpeg"


__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "StoredBlob",
    "blob_store_from_config",
    "download_headers",
    "link_secret",
    "link_valid",
    "sha256_of",
    "sign_link",
    "sweep_orphans",
    "thumbnail",
]
