"""Printable A4 QR posters, one per unit and office location.

    .venv/bin/python -m services.intake.posters \\
        --unit kua-merigi="KUA Kecamatan Merigi" --unit kankemenag-kepahiang="Kantor Kemenag" \\
        --location ptsp="Ruang PTSP" --location lobi="Lobi" --out var/posters

Each poster (PNG and PDF, A4 at 150 dpi) carries a QR code for
``<PUBLIC_BASE_URL>/?t=<signed token>`` (services.intake.domain.qrtoken, secret
``INTAKE_QR_SECRET``, the same the running intake uses) and Indonesian instructions.
"""

import argparse
import hashlib
import hmac
import os
import sys
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont

from services.intake.domain import qrtoken
from shared.auth import session_secret
from shared.config import public_base_url

A4 = (1240, 1754)  # 150 dpi
INSTRUCTIONS = (
    "1. Buka kamera ponsel dan arahkan ke kode QR ini.",
    "2. Ketuk tautan yang muncul; formulir pengaduan terbuka.",
    "3. Pilih jenis pengaduan, tulis apa yang terjadi, lalu kirim.",
    "4. Simpan kode pelacakan untuk memantau perkembangannya.",
    "Pengaduan boleh anonim atau rahasia. Layanan ini gratis.",
)


def qr_secret() -> bytes:
    configured = os.environ.get("INTAKE_QR_SECRET")
    if configured:
        return configured.encode()
    return hmac.new(session_secret(), b"qr-posters", hashlib.sha256).digest()


def _font(size):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def poster(url: str, unit_name: str, location_name: str) -> Image.Image:
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, A4[0], 170), fill=(10, 110, 58))
    draw.text((70, 45), "Sampaikan Pengaduan Anda", font=_font(64), fill="white")
    draw.text((70, 200), unit_name, font=_font(40), fill="black")
    draw.text((70, 255), f"Lokasi: {location_name}", font=_font(32), fill=(60, 60, 60))
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=16,
                         border=2)
    code.add_data(url)
    code.make(fit=True)
    qr = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    qr = qr.resize((820, 820), Image.NEAREST)
    image.paste(qr, ((A4[0] - 820) // 2, 330))
    y = 1190
    for line in INSTRUCTIONS:
        draw.text((90, y), line, font=_font(30), fill="black")
        y += 62
    draw.text((90, y + 30), url.split("?")[0], font=_font(26), fill=(60, 60, 60))
    return image


def _pairs(values):
    out = []
    for value in values or ():
        slug, _, name = value.partition("=")
        out.append((slug.strip(), (name or slug).strip()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="posters", description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", action="append", required=True, help='code="Name"')
    parser.add_argument("--location", action="append", help='slug="Name" (default: umum)')
    parser.add_argument("--out", default="var/posters")
    parser.add_argument("--base-url", default=public_base_url())
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    secret = qr_secret()
    for unit, unit_name in _pairs(args.unit):
        for location, location_name in _pairs(args.location) or [("umum", "Umum")]:
            token = qrtoken.sign(secret, unit, location)
            image = poster(f"{args.base_url.rstrip('/')}/?t={token}", unit_name, location_name)
            stem = out / f"poster-{unit}-{location}"
            image.save(f"{stem}.png")
            image.save(f"{stem}.pdf", resolution=150)
            print(f"{stem}.png / .pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
