"""The registry of units that can receive complaints: the Dumas desk, KUAs and madrasahs.

A `Registry` is immutable and built once (from `data/units.yaml` via `load_seed`). Every lookup
routing makes per complaint is a dict look-up or a scan of the complaint's own words, never a scan
of the units, so routing costs the same with 10 or 100,000 units. `with_stage` returns a new
registry that shares the indexes of the old one (stages are not indexed).
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from services.routing.domain import text

SEED_FILE = Path(__file__).resolve().parent.parent / "data" / "units.yaml"

UNIT_TYPES = ("desk", "kua", "madrasah")
# off: not on Dumas yet (its complaints go to the desk); shadow: the desk handles its complaints
# and the unit gets a read-only copy; pilot and live: the unit receives its complaints.
STAGES = ("off", "shadow", "pilot", "live")
ACCEPTING_STAGES = frozenset({"pilot", "live"})

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KECAMATAN = re.compile(r"^\d{2}\.\d{2}\.\d{2}$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@dataclass(frozen=True)
class Contact:
    email: str | None = None
    whatsapp: str | None = None  # E.164
    title: str | None = None  # the role, e.g. "Kepala KUA Kecamatan Merigi"; never a person's name

    def __post_init__(self) -> None:
        if self.whatsapp is not None and not _E164.match(self.whatsapp):
            raise ValueError(f"WhatsApp number is not E.164: {self.whatsapp!r}")


@dataclass(frozen=True)
class Section:
    code: str
    name: str


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    type: str  # desk | kua | madrasah
    stage: str  # off | shadow | pilot | live
    kecamatan_code: str | None = None
    aliases: tuple[str, ...] = ()
    sections: tuple[Section, ...] = ()
    contacts: Contact = field(default_factory=Contact)
    head: Contact | None = None  # unit head, for SLA escalations

    def __post_init__(self) -> None:
        if not _CODE.match(self.code):
            raise ValueError(f"invalid unit code {self.code!r}")
        if self.type not in UNIT_TYPES:
            raise ValueError(f"{self.code}: unknown unit type {self.type!r}")
        if self.stage not in STAGES:
            raise ValueError(f"{self.code}: unknown stage {self.stage!r}")
        if self.kecamatan_code is not None and not _KECAMATAN.match(self.kecamatan_code):
            raise ValueError(f"{self.code}: invalid kecamatan code {self.kecamatan_code!r}")
        if self.type == "kua" and self.kecamatan_code is None:
            raise ValueError(f"{self.code}: a KUA needs a kecamatan_code")

    @property
    def accepting(self) -> bool:
        """Whether complaints routed to this unit are delivered to it (pilot or live)."""
        return self.stage in ACCEPTING_STAGES

    def section(self, code: str) -> Section | None:
        return next((s for s in self.sections if s.code == code), None)


class Registry:
    """Units by code, with the indexes routing needs. Immutable."""

    def __init__(self, units: Iterable[Unit]):
        by_code: dict[str, Unit] = {}
        kua_by_kecamatan: dict[str, str] = {}
        aliases: dict[tuple[str, ...], str] = {}
        desk: str | None = None
        for unit in units:
            if unit.code in by_code:
                raise ValueError(f"duplicate unit code {unit.code!r}")
            by_code[unit.code] = unit
            if unit.type == "desk":
                if desk is not None:
                    raise ValueError(f"two desks: {desk!r} and {unit.code!r}")
                desk = unit.code
            elif unit.type == "kua":
                other = kua_by_kecamatan.setdefault(unit.kecamatan_code or "", unit.code)
                if other != unit.code:
                    raise ValueError(f"{unit.code} and {other} serve {unit.kecamatan_code}")
            else:
                for alias in (unit.name, *unit.aliases):
                    key = text.tokens(alias)
                    other = aliases.setdefault(key, unit.code) if key else unit.code
                    if other != unit.code:
                        raise ValueError(f"alias {alias!r} names both {other} and {unit.code}")
        if desk is None:
            raise ValueError("the registry needs a desk unit")
        self._units = by_code
        self._desk = desk
        self._kua_by_kecamatan = kua_by_kecamatan
        self._aliases = aliases
        self._alias_lengths = tuple(sorted({len(k) for k in aliases}, reverse=True))
        self._alias_first_words = frozenset(k[0] for k in aliases)

    def get(self, code: str) -> Unit | None:
        return self._units.get(code)

    def __getitem__(self, code: str) -> Unit:
        return self._units[code]

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __len__(self) -> int:
        return len(self._units)

    def units(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def desk(self) -> Unit:
        return self._units[self._desk]

    def kua_for_kecamatan(self, kecamatan_code: str | None) -> Unit | None:
        code = self._kua_by_kecamatan.get(kecamatan_code or "")
        return self._units[code] if code else None

    def find_madrasah_in_text(self, description: str) -> Unit | None:
        """The first madrasah named in the text (longest alias wins at a position), or None.

        Cost depends on the length of the text and of the longest alias, not on the number of
        units: each word n-gram of the normalized text that starts with the first word of an
        alias is one dict look-up.
        """
        words = text.tokens(description)
        first_words = self._alias_first_words
        for start, word in enumerate(words):
            if word not in first_words:
                continue  # no alias starts here (most words)
            for length in self._alias_lengths:
                code = self._aliases.get(words[start : start + length])
                if code is not None:
                    return self._units[code]
        return None

    def with_stage(self, code: str, stage: str) -> "Registry":
        """A registry equal to this one except that unit `code` is at `stage`."""
        unit = replace(self._units[code], stage=stage)
        new = object.__new__(Registry)
        new.__dict__.update(self.__dict__)
        new._units = {**self._units, code: unit}
        return new


def unit_from_mapping(raw: Mapping[str, Any]) -> Unit:
    """A unit from one entry of units.yaml."""
    head = raw.get("head")
    stage = raw.get("stage", "off")
    if stage is False:  # YAML 1.1 reads an unquoted `off` as false
        stage = "off"
    return Unit(
        code=raw["code"],
        name=raw["name"],
        type=raw["type"],
        stage=stage,
        kecamatan_code=raw.get("kecamatan_code"),
        aliases=tuple(raw.get("aliases") or ()),
        sections=tuple(Section(k, v) for k, v in (raw.get("sections") or {}).items()),
        contacts=Contact(**(raw.get("contacts") or {})),
        head=Contact(**head) if head else None,
    )


def load_seed(path: str | Path | None = None) -> Registry:
    """The registry described by a units YAML file (default: the bundled data/units.yaml)."""
    with Path(path or SEED_FILE).open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    return Registry(unit_from_mapping(raw) for raw in document["units"])


def synthetic_registry(n: int, base: Registry | None = None) -> Registry:
    """`base` (default: the seed) plus synthetic units up to `n` units in all, for benchmarks.

    Synthetic units never share an alias or a kecamatan with real ones ("Madrasah Sintetis 17",
    kecamatan codes 90.00.00-99.99.99), so every real complaint gets the same decision as with
    `base`. The result has max(n, len(base)) units.
    """
    base = base if base is not None else load_seed()
    extra = max(0, n - len(base))
    if extra > 2 * 100 * 100 * 10:
        raise ValueError("at most 200,000 synthetic units")
    synthetic = []
    for i in range(extra):
        stage = STAGES[i % len(STAGES)]
        if i % 2:
            synthetic.append(
                Unit(
                    code=f"madrasah-sintetis-{i}",
                    name=f"Madrasah Sintetis {i}",
                    type="madrasah",
                    stage=stage,
                    kecamatan_code=f"9{i // 20000}.{i // 200 % 100:02d}.{i // 2 % 100:02d}",
                    aliases=(f"MIS Sintetis {i}",),
                    contacts=Contact(email=f"madrasah.sintetis.{i}@kemenag.example"),
                )
            )
        else:
            synthetic.append(
                Unit(
                    code=f"kua-sintetis-{i}",
                    name=f"KUA Kecamatan Sintetis {i}",
                    type="kua",
                    stage=stage,
                    kecamatan_code=f"9{i // 20000}.{i // 200 % 100:02d}.{i // 2 % 100:02d}",
                    contacts=Contact(email=f"kua.sintetis.{i}@kemenag.example"),
                )
            )
    return Registry([*base.units(), *synthetic])
