"""Normalization of complaint text, and what routing reads out of it.

Complaints arrive from WhatsApp, QR posters and paper forms retyped at the PTSP desk, so the same
madrasah or village is written many ways. Everything here works on *tokens*: lower-case ASCII
words and numbers, produced by `tokens()`:

- case, accents, punctuation and extra spaces are dropped; dotted abbreviations are joined
  ("M.Ts.N" -> "mtsn");
- WhatsApp shorthand is expanded ("yg" -> "yang", "sbrg" -> "seberang", "kec" -> "kecamatan");
- madrasah prefixes are made canonical ("MTs N", "mts negeri", "Madrasah Tsanawiyah Negeri" ->
  "mtsn"), glued numbers are split ("MTsN2" -> "mtsn 2"), leading zeros dropped ("02" -> "2"),
  and Roman numerals become Arabic ("MAN I" -> "man 1", "Daspetah II" -> "daspetah 2");
- Indonesian reduplication is folded ("pungutan2", "pungutan-pungutan" -> "pungutan").

On top of that: `integrity_terms()` detects integritas language (pungli, suap, ...), and
`find_area_in_text()` finds a kecamatan or desa/kelurahan of Kepahiang, tolerating typos.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

from shared import wilayah

# WhatsApp / SMS shorthand -> full word. Only unambiguous ones: a wrong expansion could hide a
# madrasah or place name.
ABBREVIATIONS: dict[str, str] = {
    "yg": "yang",
    "dgn": "dengan",
    "dg": "dengan",
    "dng": "dengan",
    "tdk": "tidak",
    "gak": "tidak",
    "gk": "tidak",
    "ga": "tidak",
    "nggak": "tidak",
    "ngga": "tidak",
    "enggak": "tidak",
    "tak": "tidak",
    "sy": "saya",
    "aku": "saya",
    "kmrn": "kemarin",
    "kmarin": "kemarin",
    "bpk": "bapak",
    "bp": "bapak",
    "pak": "bapak",
    "bu": "ibu",
    "sdh": "sudah",
    "udh": "sudah",
    "udah": "sudah",
    "blm": "belum",
    "krn": "karena",
    "krna": "karena",
    "karna": "karena",
    "utk": "untuk",
    "untk": "untuk",
    "dr": "dari",
    "dri": "dari",
    "jg": "juga",
    "tp": "tapi",
    "tpi": "tapi",
    "sm": "sama",
    "org": "orang",
    "skrg": "sekarang",
    "skr": "sekarang",
    "hr": "hari",
    "thn": "tahun",
    "th": "tahun",
    "bln": "bulan",
    "lg": "lagi",
    "aja": "saja",
    "mhn": "mohon",
    "tlg": "tolong",
    "tlng": "tolong",
    "pd": "pada",
    "ttg": "tentang",
    "trs": "terus",
    "msh": "masih",
    "kalo": "kalau",
    "klo": "kalau",
    "kl": "kalau",
    "bgmn": "bagaimana",
    "gmn": "bagaimana",
    "knp": "kenapa",
    "sj": "saja",
    "spt": "seperti",
    "sdg": "sedang",
    "bbrp": "beberapa",
    "byk": "banyak",
    "duit": "uang",
    "duwit": "uang",
    "kec": "kecamatan",
    "kcmtn": "kecamatan",
    "kab": "kabupaten",
    "kel": "kelurahan",
    "ds": "desa",
    "sbrg": "seberang",
    "sbr": "seberang",
    "kpg": "kepahiang",
    "kphg": "kepahiang",
    "kph": "kepahiang",
    "nikh": "nikah",
    "nkh": "nikah",
    "negri": "negeri",
}

# Tokens after which a bare number or Roman numeral is the unit's number ("MAN I", "MTsN02").
NUMBERED_PREFIXES = frozenset(
    [
        "man",
        "mtsn",
        "min",
        "mas",
        "mts",
        "mtss",
        "ma",
        "mi",
        "mis",
        "ra",
        "kua",
        "sd",
        "sdn",
        "smp",
        "smpn",
        "sma",
        "sman",
        "smk",
        "smkn",
        "kelas",
    ]
)

# Multi-word spellings of madrasah types -> one canonical token. Longest first.
_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    sorted(
        (
            (("madrasah", "tsanawiyah", "negeri"), "mtsn"),
            (("madrasah", "tsanawiyah", "n"), "mtsn"),
            (("madrasah", "aliyah", "n"), "man"),
            (("madrasah", "ibtidaiyah", "n"), "min"),
            (("madrasah", "tsanawiyah", "s"), "mtss"),
            (("madrasah", "aliyah", "s"), "mas"),
            (("madrasah", "ibtidaiyah", "s"), "mis"),
            (("madrasah", "aliyah", "negeri"), "man"),
            (("madrasah", "ibtidaiyah", "negeri"), "min"),
            (("madrasah", "tsanawiyah", "swasta"), "mtss"),
            (("madrasah", "aliyah", "swasta"), "mas"),
            (("madrasah", "ibtidaiyah", "swasta"), "mis"),
            (("madrasah", "tsanawiyah"), "mts"),
            (("madrasah", "aliyah"), "ma"),
            (("madrasah", "ibtidaiyah"), "mi"),
            (("kantor", "urusan", "agama"), "kua"),
            (("mts", "negeri"), "mtsn"),
            (("mts", "n"), "mtsn"),
            (("mts", "swasta"), "mtss"),
            (("mts", "s"), "mtss"),
            (("ma", "negeri"), "man"),
            (("ma", "n"), "man"),
            (("ma", "swasta"), "mas"),
            (("mi", "negeri"), "min"),
            (("mi", "n"), "min"),
            (("mi", "swasta"), "mis"),
            (("mi", "s"), "mis"),
        ),
        key=lambda p: -len(p[0]),
    )
)
_PHRASE_FIRST = frozenset(p[0][0] for p in _PHRASES)

# "Madrasah" and the madrasah types as people spell them ("madrasah tsanawiyyah", "madrasa
# sanawiyah", "ibtida'iyah", "aliah"): corrected only right after a spelling of "madrasah",
# because "Aliyah" alone is also a given name.
_MADRASAH_WORDS = frozenset({"madrasah", "madrasa", "madrsah", "madarasah", "madrasyah"})

_ROMAN = re.compile(r"^(x{0,3})(ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10}
# "m.ts.n", "s.pd.i": dotted abbreviations made of short letter groups.
_DOTTED = re.compile(r"\b(?:[a-z]{1,3}\.)+[a-z]{1,3}\b\.?")
_NON_WORD = re.compile(r"[^a-z0-9]+")
# "ibtida'iyah", "jum'at": an apostrophe inside a word joins it, it does not split it.
_INNER_APOSTROPHE = re.compile(r"(?<=[a-z])['\u2019`](?=[a-z])")
_LETTERS_DIGITS = re.compile(r"[a-z]+|[0-9]+")
_REDUPLICATED = re.compile(r"^([a-z]{3,})2$")


def _roman_to_int(token: str) -> int | None:
    if not token or _ROMAN.match(token) is None:
        return None
    total = 0
    for i, ch in enumerate(token):
        value = _ROMAN_VALUES[ch]
        nxt = _ROMAN_VALUES[token[i + 1]] if i + 1 < len(token) else 0
        total += -value if value < nxt else value
    return total


def _ascii_lower(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _split_raw(word: str) -> list[str]:
    match = _REDUPLICATED.match(word)
    if match and match.group(1) not in NUMBERED_PREFIXES:
        return [match.group(1)]
    out = []
    for part in _LETTERS_DIGITS.findall(word):
        if part.isdigit():
            out.append(part.lstrip("0") or "0")
        else:
            out.append(ABBREVIATIONS.get(part, part))
    return out


@cache
def _madrasah_types() -> "FuzzyVocabulary":
    return FuzzyVocabulary(("tsanawiyah", "aliyah", "ibtidaiyah"))


def _madrasah_spellings(words: list[str]) -> list[str]:
    out = list(words)
    for i, word in enumerate(words[:-1]):
        if word in _MADRASAH_WORDS:
            out[i] = "madrasah"
            found = _madrasah_types().lookup(words[i + 1])
            if found:
                out[i + 1] = found[0][0]
    return out


def _canonical_phrases(words: list[str]) -> list[str]:
    if _MADRASAH_WORDS.intersection(words):
        words = _madrasah_spellings(words)
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in _PHRASE_FIRST:
            for phrase, canonical in _PHRASES:
                if tuple(words[i : i + len(phrase)]) == phrase:
                    out.append(canonical)
                    i += len(phrase)
                    break
            else:
                out.append(words[i])
                i += 1
        else:
            out.append(words[i])
            i += 1
    return out


def _numerals(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        value = _roman_to_int(word) if word[0] in "ivx" else None
        # A lone i/v/x is a numeral only right after a numbered prefix ("MAN I", not "x kali").
        if value is not None and (len(word) > 1 or (out and out[-1] in NUMBERED_PREFIXES)):
            word = str(value)
        if out and word == out[-1] and word.isalpha() and len(word) >= 3:
            continue  # reduplication written with a space or hyphen: "pungutan pungutan"
        out.append(word)
    return out


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[str, ...]:
    """The normalized tokens of `text` (see the module docstring)."""
    lowered = _ascii_lower(text)
    lowered = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), lowered)
    lowered = _INNER_APOSTROPHE.sub("", lowered)
    words: list[str] = []
    for raw in _NON_WORD.split(lowered):
        if raw.isalpha():  # letters only (most words): what _split_raw gives, without regexes
            words.append(ABBREVIATIONS.get(raw, raw))
        elif raw:
            words.extend(_split_raw(raw))
    return tuple(_numerals(_canonical_phrases(words)))


def normalize(text: str) -> str:
    """`tokens()` joined by single spaces: "MTs. Negeri 02  Kepahiang!" -> "mtsn 2 kepahiang"."""
    return " ".join(tokens(text))


# --- edit distance -------------------------------------------------------------------------


def max_edits(word: str) -> int:
    """Typos tolerated in a word of this length: none up to 3 letters, 1 up to 8, then 2."""
    n = len(word)
    if n <= 3:
        return 0
    return 1 if n <= 8 else 2


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance (with adjacent transpositions), or limit + 1 once it exceeds limit."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, prev2[j - 2] + 1)
            cur[j] = value
            best = min(best, value)
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


class FuzzyVocabulary:
    """Words indexed by length, so a lookup compares only words of similar length."""

    def __init__(self, words: Iterable[str]):
        self._by_length: dict[int, list[str]] = {}
        self._words = frozenset(words)
        for word in self._words:
            self._by_length.setdefault(len(word), []).append(word)
        self.lookup = lru_cache(maxsize=8192)(self._lookup)

    def _lookup(self, token: str) -> tuple[tuple[str, int], ...]:
        """Vocabulary words within `max_edits` of token, as (word, distance), closest first."""
        if token in self._words:
            return ((token, 0),)
        if token.isdigit():
            return ()
        found = []
        for length in range(len(token) - 2, len(token) + 3):
            for word in self._by_length.get(length, ()):
                limit = min(max_edits(word), max_edits(token))
                # One typo must leave the first letter alone; that halves the comparisons.
                if limit and (limit > 1 or word[0] == token[0]):
                    distance = edit_distance(token, word, limit)
                    if distance <= limit:
                        found.append((word, distance))
        return tuple(sorted(found, key=lambda f: (f[1], f[0])))


# --- integritas language ---------------------------------------------------------------------

_INTEGRITY_WORDS: dict[str, str] = {
    **dict.fromkeys(("pungli", "dipungli", "pungliin"), "pungli"),
    **dict.fromkeys(
        [
            "suap",
            "disuap",
            "menyuap",
            "suapan",
            "penyuapan",
            "penyuap",
            "sogok",
            "nyogok",
            "sogokan",
            "disogok",
            "menyogok",
            "penyogokan",
            "nyogokin",
        ],
        "suap",
    ),
    "gratifikasi": "gratifikasi",
    "pelicin": "uang pelicin",
    **dict.fromkeys(("pemerasan", "memeras", "diperas", "pemeras"), "pemerasan"),
    **dict.fromkeys(("calo", "percaloan", "mencalo", "dicalokan"), "calo"),
    **dict.fromkeys(("korupsi", "dikorupsi", "korup"), "korupsi"),
}
_INTEGRITY_PHRASES: dict[tuple[str, ...], str] = {
    ("pungutan", "liar"): "pungutan liar",
    ("pungutan", "tidak", "resmi"): "pungutan liar",
    ("biaya", "tidak", "resmi"): "pungutan liar",
    ("uang", "rokok"): "uang rokok",
    ("uang", "kopi"): "uang rokok",
    ("uang", "pelancar"): "uang pelicin",
    ("uang", "terima", "kasih"): "gratifikasi",
    ("uang", "damai"): "suap",
}
_ASKING = frozenset({"minta", "meminta", "diminta", "dimintai", "dimintain", "mintain", "memintai"})
_MONEY = frozenset({"uang", "imbalan", "bayaran", "jatah", "fee", "setoran"})
_SUFFIXES = ("nya", "lah", "kah")
# The phrases by first word, each list in _INTEGRITY_PHRASES's order: a word is compared with the
# phrases that can start at it instead of with every phrase (routing's CPU per complaint).
_PHRASES_BY_FIRST: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {}
for _phrase, _name in _INTEGRITY_PHRASES.items():
    _PHRASES_BY_FIRST[_phrase[0]] = (*_PHRASES_BY_FIRST.get(_phrase[0], ()), (_phrase, _name))
# Every word at which integrity_terms can find a term: a term word, a term word with a suffix
# (as the suffix rule strips it: a stem of more than three letters), the first word of a phrase,
# an asking word. Most complaints have none of them; their scan is one set test.
_TRIGGERS = frozenset({
    *_INTEGRITY_WORDS,
    *(word + suffix for word in _INTEGRITY_WORDS if len(word) > 3 for suffix in _SUFFIXES),
    *_PHRASES_BY_FIRST,
    *_ASKING,
})


def integrity_terms(text: str) -> tuple[str, ...]:
    """Integritas terms found in `text` (canonical names, in order, without duplicates)."""
    words = tokens(text)
    if _TRIGGERS.isdisjoint(words):
        return ()
    found: list[str] = []
    for i, word in enumerate(words):
        term = _INTEGRITY_WORDS.get(word)
        if term is None:
            for suffix in _SUFFIXES:
                if word.endswith(suffix) and len(word) > len(suffix) + 3:
                    term = _INTEGRITY_WORDS.get(word[: -len(suffix)])
                    break
        if term is None:
            for phrase, name in _PHRASES_BY_FIRST.get(word, ()):
                if words[i : i + len(phrase)] == phrase:
                    term = name
                    break
        if term is None and word in _ASKING and _MONEY.intersection(words[i + 1 : i + 4]):
            term = "minta uang"
        if term is not None and term not in found:
            found.append(term)
    return tuple(found)


def mentions_integrity(text: str) -> bool:
    return bool(integrity_terms(text))


# --- places ----------------------------------------------------------------------------------


class AreaMatch(NamedTuple):
    kecamatan_code: str
    desa_code: str | None
    matched_name: str  # official name of the area found


@dataclass(frozen=True)
class _Place:
    words: tuple[str, ...]
    area: wilayah.Area
    kecamatan_code: str
    is_kecamatan: bool


_KECAMATAN_CONTEXT = frozenset({"kecamatan"})
_VILLAGE_CONTEXT = frozenset({"desa", "kelurahan"})
# "Kepahiang" alone usually means the regency ("warga Kepahiang"); only "kecamatan Kepahiang" or
# "KUA Kepahiang" name the kecamatan. Village names that are ordinary words need "desa"/"kelurahan".
_NEEDS_CONTEXT = frozenset({"kepahiang", "pensiunan", "kandang", "permu", "air hitam"})


@dataclass(frozen=True)
class _PlaceIndex:
    by_first: dict[str, tuple[_Place, ...]]
    vocabulary: FuzzyVocabulary
    max_words: int


@cache
def _place_index() -> _PlaceIndex:
    places: list[_Place] = []
    for code in wilayah.kecamatan():
        area = wilayah.kecamatan()[code]
        for name in wilayah.kecamatan_names(code):
            places.append(_Place(tokens(name), area, code, True))
    for area in wilayah.villages().values():
        places.append(_Place(tokens(area.name), area, area.kecamatan_code or "", False))
    # Names written as one word ("sukasari" for "Suka Sari", "tebatkarai").
    places += [
        _Place(("".join(p.words),), p.area, p.kecamatan_code, p.is_kecamatan)
        for p in list(places)
        if len(p.words) > 1 and "".join(p.words).isalpha()
    ]
    by_first: dict[str, list[_Place]] = {}
    for place in places:
        by_first.setdefault(place.words[0], []).append(place)
    vocabulary = FuzzyVocabulary(w for p in places for w in p.words)
    return _PlaceIndex(
        {k: tuple(v) for k, v in by_first.items()},
        vocabulary,
        max(len(p.words) for p in places),
    )


def _match_place(words: Sequence[str], place: _Place, index: _PlaceIndex) -> int | None:
    """Total typo distance between words and the place name, or None if they differ too much."""
    if len(words) != len(place.words):
        return None
    cost = 0
    for word, expected in zip(words, place.words, strict=True):
        if word == expected:
            continue
        distance = dict(index.vocabulary.lookup(word)).get(expected)
        if distance is None:
            return None
        cost += distance
    return cost if cost <= 2 else None


def find_area_in_text(text: str) -> AreaMatch | None:
    """The kecamatan (and desa/kelurahan, if one is named) that `text` talks about, or None.

    Preference, best first: a place right after "KUA"; a place right after "kecamatan", "desa"
    or "kelurahan" of that level; a desa/kelurahan over a kecamatan; an exact over a misspelt
    name; a longer name; the earlier mention. Misspelt one-word names count only after such a
    keyword, except kecamatan names of 6+ letters ("kabawetan", "merigi").
    """
    words = tokens(text)
    index = _place_index()
    best: tuple[tuple[int, ...], _Place] | None = None
    for start in range(len(words)):
        before = words[start - 1] if start else ""
        candidates: list[tuple[_Place, int, int]] = []  # place, cost, words consumed
        for first, _ in index.vocabulary.lookup(words[start]):
            for place in index.by_first.get(first, ()):
                span = words[start : start + len(place.words)]
                cost = _match_place(span, place, index)
                if cost is not None:
                    candidates.append((place, cost, len(place.words)))
        if start + 1 < len(words):
            joined = words[start] + words[start + 1]
            for first, cost in index.vocabulary.lookup(joined):
                candidates += [
                    (p, cost, 2) for p in index.by_first.get(first, ()) if len(p.words) == 1
                ]
        for place, cost, consumed in candidates:
            name = " ".join(place.words)
            if before == "kua":
                context = 3 if place.is_kecamatan else -1
            elif before in _KECAMATAN_CONTEXT:
                context = 2 if place.is_kecamatan else -1
            elif before in _VILLAGE_CONTEXT:
                context = 2 if not place.is_kecamatan else -1
            else:
                context = 0
            if context <= 0 and name in _NEEDS_CONTEXT:
                continue
            if (
                context <= 0
                and cost
                and len(place.words) == 1
                and consumed == 1
                and not (place.is_kecamatan and len(name) >= 6)
            ):
                continue
            key = (context, 0 if place.is_kecamatan else 1, -cost, consumed, -start)
            if best is None or key > best[0]:
                best = (key, place)
    if best is None:
        return None
    place = best[1]
    return AreaMatch(
        place.kecamatan_code,
        None if place.is_kecamatan else place.area.code,
        place.area.name,
    )
