"""Evidence files are judged by their bytes: real images, PDFs and audio made here, executables
and broken files refused with the right status; photos lose their EXIF (GPS) on the way in."""

import io

import pytest
from PIL import Image
from support.evidence_files import (
    ELF_EXECUTABLE,
    GPS_IFD,
    PE_EXECUTABLE,
    jpeg_with_gps,
    pdf_bytes,
    png_bomb,
)

from services.intake.domain import attachments as rules
from services.intake.domain.attachments import AttachmentRefused, prepare, safe_name, sniff


def test_a_jpeg_with_gps_exif_comes_out_without_any_exif():
    original = jpeg_with_gps()
    assert GPS_IFD in Image.open(io.BytesIO(original)).getexif()  # the input really has GPS

    prepared = prepare(original, "IMG_2024.JPG")

    clean = Image.open(io.BytesIO(prepared.data))
    assert prepared.media_type == "image/jpeg" and clean.size == (64, 48)
    assert dict(clean.getexif()) == {}
    assert b"Exif" not in prepared.data and b"KameraHP" not in prepared.data
    assert prepared.name == "IMG_2024.jpg"


def test_a_png_decompression_bomb_is_refused_from_its_header():
    with pytest.raises(AttachmentRefused) as refused:
        prepare(png_bomb(), "bom.png")
    assert (refused.value.status, refused.value.code) == (413, "image_too_large")


@pytest.mark.parametrize("payload", [
    ELF_EXECUTABLE,
    PE_EXECUTABLE,
    b"<html><script>alert(1)</script></html>",
    b"PK\x03\x04" + b"\x00" * 100,  # zip / docx / apk
])
def test_a_renamed_executable_or_page_is_refused_as_the_wrong_type(payload):
    with pytest.raises(AttachmentRefused) as refused:
        prepare(payload, "foto_bukti.jpg")
    assert (refused.value.status, refused.value.code) == (415, "unsupported_file_type")


def test_a_file_with_an_image_signature_that_does_not_decode_is_refused():
    with pytest.raises(AttachmentRefused) as refused:
        prepare(b"\xff\xd8\xff\xe0" + b"garbage" * 50, "rusak.jpg")
    assert (refused.value.status, refused.value.code) == (415, "invalid_image")


def test_a_broken_pdf_is_refused_and_a_real_one_is_kept_as_sent():
    good = pdf_bytes()
    prepared = prepare(good, "kwitansi.pdf")
    assert (prepared.media_type, prepared.data) == ("application/pdf", good)

    with pytest.raises(AttachmentRefused) as refused:
        prepare(good[: len(good) // 3], "kwitansi.pdf")
    assert (refused.value.status, refused.value.code) == (415, "invalid_pdf")
    with pytest.raises(AttachmentRefused):
        prepare(b"%PDF-1.7\nthis is not a pdf at all\n%%EOF", "palsu.pdf")


def test_an_oversize_file_is_refused_before_it_is_decoded():
    with pytest.raises(AttachmentRefused) as refused:
        prepare(b"\xff\xd8\xff" + b"\x00" * rules.MAX_FILE_BYTES, "besar.jpg")
    assert (refused.value.status, refused.value.code) == (413, "file_too_large")


def test_batches_are_limited_in_count_and_total_size():
    with pytest.raises(AttachmentRefused) as refused:
        rules.check_batch([("a.jpg", 10)] * 6)
    assert (refused.value.status, refused.value.code) == (400, "too_many_files")
    with pytest.raises(AttachmentRefused) as refused:
        rules.check_batch([("a.jpg", 4 * rules.MIB)] * 4)
    assert (refused.value.status, refused.value.code) == (413, "attachments_too_large")
    rules.check_batch([("a.jpg", 3 * rules.MIB)] * 5)


@pytest.mark.parametrize("head,expected", [
    (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "audio/ogg"),
    (b"ID3\x04\x00\x00", "audio/mpeg"),
    (b"\xff\xfb\x90\x64", "audio/mpeg"),
    (b"\xff\xf1\x50\x80", "audio/aac"),
    (b"#!AMR\n", "audio/amr"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"GIF89a", None),
])
def test_media_types_come_from_the_magic_numbers(head, expected):
    assert sniff(head + b"\x00" * 32) == expected


def test_a_png_keeps_transparency_and_loses_its_text_chunks():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Pak Budi, 0812-3456-7890")
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(out, "PNG", pnginfo=info)

    prepared = prepare(out.getvalue(), "tangkapan layar.png")

    assert b"0812" not in prepared.data
    assert Image.open(io.BytesIO(prepared.data)).mode == "RGBA"
    assert prepared.name == "tangkapan layar.png"


@pytest.mark.parametrize("original,media_type,expected", [
    ("../../etc/passwd", "image/png", "passwd.png"),
    ("C:\\Users\\x\\bukti<script>.jpg", "image/jpeg", "bukti_script.jpg"),
    ("evil.pdf.exe", "application/pdf", "evil.pdf.pdf"),
    ("", "audio/ogg", "lampiran.ogg"),
    ("foto\u202egpj.exe", "image/jpeg", "fotogpj.jpg"),
])
def test_names_are_sanitised_and_take_the_real_type_extension(original, media_type, expected):
    assert safe_name(original, media_type) == expected
