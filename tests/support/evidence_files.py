"""Real evidence files made on the spot (Pillow, reportlab): photos with GPS EXIF, PNG
decompression bombs, PDFs, and the headers of voice notes, for the attachment tests."""

import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825


def jpeg_with_gps(size=(64, 48), color=(200, 40, 40)) -> bytes:
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[0x010F] = "KameraHP"  # Make
    exif[0x0110] = "Model-X1"  # Model
    exif[GPS_IFD] = {1: "S", 2: (3.0, 37.0, 12.5), 3: "E", 4: (102.0, 34.0, 1.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bytes(size=(20, 10), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def png_bomb(width=20_000, height=20_000) -> bytes:
    """A valid PNG header claiming 400 megapixels over a few KiB of zlib'd zeros."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * (width // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(2000)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def pdf_bytes(text="Kwitansi pungutan liar Rp 500.000") -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    page.drawString(72, 720, text)
    page.save()
    return out.getvalue()


def ogg_opus_voice_note(seconds=1) -> bytes:
    """An Ogg page carrying an OpusHead, as WhatsApp voice notes start (content not decoded)."""
    head = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    page = (b"OggS\x00\x02" + b"\x00" * 8 + struct.pack("<I", 1234) + struct.pack("<I", 0)
            + b"\x00\x00\x00\x00" + b"\x01" + bytes([len(head)]) + head)
    return page + b"\x00" * (4000 * seconds)


ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200
PE_EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200
