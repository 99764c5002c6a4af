"""Kepahiang's administrative areas (kecamatan, desa/kelurahan) with Kemendagri codes.

Source: shared/data/kepahiang-wilayah.csv (Kepmendagri No. 300.2.2-2430 Tahun 2025), bundled
with the package. 17.08.06 is officially "Kebawetan"; the press and local offices write
"Kabawetan": both names are accepted.
"""

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "kepahiang-wilayah.csv"

# Extra spellings people use, keyed by official code.
ALIASES: dict[str, tuple[str, ...]] = {"17.08.06": ("Kabawetan",)}


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: str  # kabupaten | kecamatan | kelurahan | desa

    @property
    def kecamatan_code(self) -> str | None:
        parts = self.code.split(".")
        return ".".join(parts[:3]) if len(parts) >= 3 else None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@cache
def areas() -> tuple[Area, ...]:
    with DATA_FILE.open(encoding="utf-8", newline="") as fh:
        return tuple(Area(r["code"], r["name"], r["level"]) for r in csv.DictReader(fh))


@cache
def kecamatan() -> dict[str, Area]:
    """Kecamatan by code, in code order."""
    return {a.code: a for a in areas() if a.level == "kecamatan"}


@cache
def villages() -> dict[str, Area]:
    """Desa and kelurahan by code."""
    return {a.code: a for a in areas() if a.level in ("desa", "kelurahan")}


def kecamatan_names(code: str) -> tuple[str, ...]:
    """Official name first, then accepted alternative spellings."""
    return (kecamatan()[code].name, *ALIASES.get(code, ()))
