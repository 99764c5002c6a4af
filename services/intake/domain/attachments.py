"""Evidence attachments: what is accepted, decided from the bytes, and made safe to keep.

- The type comes from the bytes (magic numbers), never from the file name or the declared type.
- Images (JPEG, PNG, WebP) are decoded and re-encoded from their pixels only: EXIF (GPS
  location, device), XMP, ICC and comments are gone. A pixel limit refuses decompression bombs
  before any pixel is decoded.
- PDFs must parse (pypdf); they are kept as sent and only ever served as a download.
- Audio (voice notes: Ogg/Opus, MP3, M4A/AAC, AMR) and MP4 video are recognised by their
  signatures and kept as sent; they are served as downloads too.

Refusals carry an HTTP status (413 too large, 415 wrong type, 400 too many), a machine code and
an Indonesian message. No nameko, no database here.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

MIB = 1024 * 1024
MAX_FILES = 5
MAX_FILE_BYTES = 5 * MIB
MAX_TOTAL_BYTES = 15 * MIB
# WhatsApp voice notes and videos may be longer than a photo; the Cloud API's own cap is 16 MB.
MAX_WHATSAPP_MEDIA_BYTES = 16 * MIB
# 40 megapixels: more than any phone camera (a 108 MP sensor bins to 12 MP photos); a PNG bomb
# of 1 px-per-byte decompresses to gigabytes and is refused from its header alone.
MAX_PIXELS = 40_000_000

IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
AUDIO_TYPES = {"audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp4": ".m4a",
               "audio/aac": ".aac", "audio/amr": ".amr"}
VIDEO_TYPES = {"video/mp4": ".mp4"}
DOCUMENT_TYPES = {"application/pdf": ".pdf"}
EXTENSIONS = {**IMAGE_TYPES, **AUDIO_TYPES, **VIDEO_TYPES, **DOCUMENT_TYPES}
ACCEPT = ",".join(sorted({*IMAGE_TYPES, "application/pdf", *AUDIO_TYPES}))

LABELS = {"image": "Foto", "document": "Dokumen PDF", "audio": "Rekaman suara",
          "video": "Video"}


class AttachmentRefused(ValueError):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Prepared:
    """An accepted file, ready to store: the (re-encoded) bytes and what they are."""

    data: bytes
    media_type: str
    name: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def kind(self) -> str:
        return kind_of(self.media_type)


def kind_of(media_type: str) -> str:
    if media_type in IMAGE_TYPES:
        return "image"
    if media_type in AUDIO_TYPES:
        return "audio"
    if media_type in VIDEO_TYPES:
        return "video"
    return "document"


def too_many() -> AttachmentRefused:
    return AttachmentRefused(400, "too_many_files",
                             f"Lampiran paling banyak {MAX_FILES} berkas per pengaduan.")


def too_large(name: str, limit: int = MAX_FILE_BYTES) -> AttachmentRefused:
    return AttachmentRefused(413, "file_too_large",
                             f"Berkas {name} terlalu besar (maksimal {limit // MIB} MiB per "
                             "berkas).")


def total_too_large() -> AttachmentRefused:
    return AttachmentRefused(413, "attachments_too_large",
                             f"Ukuran semua lampiran terlalu besar (maksimal "
                             f"{MAX_TOTAL_BYTES // MIB} MiB).")


def _unsupported(name: str) -> AttachmentRefused:
    return AttachmentRefused(415, "unsupported_file_type",
                             f"Jenis berkas {name} tidak diterima. Kirim foto (JPEG, PNG, "
                             "WebP), dokumen PDF, atau rekaman suara.")


# -- sniffing ---------------------------------------------------------------------------------

_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, among the accepted ones; None for anything else
    (executables, HTML, archives, scripts, ...)."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "audio/mp4" if brand in _MP4_AUDIO_BRANDS else "video/mp4"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync (11 set bits); layer bits 00 there is ADTS (AAC).
        layer = (head[1] >> 1) & 0x03
        return "audio/aac" if layer == 0 else "audio/mpeg"
    return None


# -- names ------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w .()-]+", re.UNICODE)


def safe_name(original: str | None, media_type: str) -> str:
    """A display name: no directories, no control or odd characters, at most 100 characters,
    and always the extension of the type the bytes really are."""
    base = (original or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:90] or "lampiran"
    return stem + EXTENSIONS[media_type]


# -- preparing --------------------------------------------------------------------------------


def prepare(data: bytes, original_name: str | None = None, *,
            max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> Prepared:
    """Check one file and make it safe to keep; AttachmentRefused when it is not accepted."""
    shown = safe_name(original_name, "application/pdf")[:-4]
    if len(data) > max_bytes:
        raise too_large(shown, max_bytes)
    if not data:
        raise AttachmentRefused(400, "empty_file", f"Berkas {shown} kosong.")
    media_type = sniff(data)
    if media_type is None:
        raise _unsupported(shown)
    if media_type in IMAGE_TYPES:
        clean, media_type = _reencode_image(data, media_type, shown, max_pixels)
        return Prepared(clean, media_type, safe_name(original_name, media_type))
    if media_type == "application/pdf":
        _check_pdf(data, shown)
    return Prepared(data, media_type, safe_name(original_name, media_type))


def _reencode_image(data: bytes, media_type: str, shown: str,
                    max_pixels: int) -> tuple[bytes, str]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    bomb = AttachmentRefused(413, "image_too_large",
                             f"Gambar {shown} terlalu besar (maksimal {max_pixels // 1_000_000} "
                             "megapiksel).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels or width < 1 or height < 1:
                raise bomb
            if getattr(image, "n_frames", 1) > 1 and media_type != "image/jpeg":
                # Animated PNG/WebP: keep the first frame only.
                image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)  # keep what the photo shows, drop the tag
    except AttachmentRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise bomb from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise AttachmentRefused(415, "invalid_image",
                                f"Gambar {shown} rusak atau tidak dapat dibaca.") from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    if media_type == "image/jpeg" or not has_alpha:
        mode = "RGB" if image.mode not in ("L",) else "L"
    else:
        mode = "RGBA"
    out = io.BytesIO()
    try:
        pixels = image.convert(mode)
        # A fresh image made from the pixels alone: nothing of the original's metadata comes.
        clean = Image.frombytes(mode, pixels.size, pixels.tobytes())
        if media_type == "image/jpeg":
            clean.save(out, "JPEG", quality=88, optimize=True)
        elif media_type == "image/png":
            clean.save(out, "PNG", optimize=True)
        else:
            clean.save(out, "WEBP", quality=85)
    except (OSError, ValueError) as exc:  # exotic modes (16-bit, CMYK PNG, ...)
        raise AttachmentRefused(415, "invalid_image",
                                f"Gambar {shown} tidak dapat diproses.") from exc
    return out.getvalue(), media_type


def _check_pdf(data: bytes, shown: str) -> None:
    from pypdf import PdfReader

    broken = AttachmentRefused(415, "invalid_pdf",
                               f"Dokumen {shown} bukan PDF yang utuh atau tidak dapat dibaca.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=True)
            if len(reader.pages) < 1:
                raise broken
            reader.pages[0].mediabox  # noqa: B018 - parse the first page object
    except AttachmentRefused:
        raise
    except Exception as exc:  # pypdf raises many kinds for broken input
        raise broken from exc


def check_batch(files: list[tuple[str | None, int]]) -> None:
    """Count and total size of a submission's files (name, size), before any is decoded."""
    if len(files) > MAX_FILES:
        raise too_many()
    for name, size in files:
        if size > MAX_FILE_BYTES:
            raise too_large(safe_name(name, "application/pdf")[:-4])
    if sum(size for _, size in files) > MAX_TOTAL_BYTES:
        raise total_too_large()


def reference(prepared: Prepared, sha256: str) -> dict:
    """What databases and events keep of a stored file."""
    return {"sha256": sha256, "size": prepared.size, "media_type": prepared.media_type,
            "name": prepared.name}


def human_size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB".replace(".", ",")
    return f"{max(1, round(size / 1024))} KiB"
