"""Tracking codes: what a person writes down, reads out at the PTSP desk or types into the web form.

Format: ``DMS-XXXX-XXXX-XXXX`` (18 characters), e.g. ``DMS-7KQ4-MX9T-2BH3``.

- ``DMS`` marks the string as a Dumas code, so it is not confused with a phone or letter number.
- The 12 symbols after it come from a 30-symbol alphabet: the digits 2-9 and the letters A-Z
  without I, L, O and U. ``0``/``O`` and ``1``/``I``/``L`` are left out because they are confused
  when read aloud or handwritten; ``U`` is left out so codes do not spell words.
- The first 11 symbols are drawn with :mod:`secrets` (11 * log2(30) = 53.97 bits), so codes are
  unguessable and never sequential. The 12th symbol is a Luhn mod 30 check symbol: it catches every
  single mistyped symbol and most swaps of neighbours, so a misheard code is rejected at once
  instead of being looked up (and it never lowers the entropy of the random part).
- Groups of four are easy to read aloud and to compare at a glance.

Input is forgiving about presentation only: case, spaces, dashes (also the typographic dashes that
phone keyboards insert), dots, underscores and the ``DMS`` prefix are optional. Characters outside
the alphabet are never mapped to a guess: ``0``/``O`` and ``1``/``I``/``L`` are *all* absent, so
there is no unambiguous nearest symbol; such input is simply not a code.
"""

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "DMS"
RANDOM_LENGTH = 11
BODY_LENGTH = RANDOM_LENGTH + 1  # random symbols + check symbol
GROUP = 4
CODE_LENGTH = len(PREFIX) + 1 + BODY_LENGTH + (BODY_LENGTH - 1) // GROUP  # 18

_INDEX = {symbol: i for i, symbol in enumerate(ALPHABET)}
_N = len(ALPHABET)
# Separators people (and their keyboards) put inside codes: whitespace, ASCII and Unicode dashes,
# dots, underscores.
_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]+")


def _check_symbol(body: str) -> str:
    """Luhn mod N check symbol for ``body`` (symbols of ALPHABET)."""
    total = 0
    factor = 2
    for symbol in reversed(body):
        addend = factor * _INDEX[symbol]
        total += addend // _N + addend % _N
        factor = 1 if factor == 2 else 2
    return ALPHABET[(_N - total % _N) % _N]


def _format(body: str) -> str:
    groups = [body[i : i + GROUP] for i in range(0, len(body), GROUP)]
    return "-".join((PREFIX, *groups))


def new_tracking_code() -> str:
    """A fresh random code such as ``DMS-7KQ4-MX9T-2BH3``.

    Uniqueness is probabilistic (30^11, about 1.8 * 10^16 possible codes); the store must still keep
    a unique index on the code and draw again on the (practically impossible) conflict.
    """
    random_part = _random_symbols(RANDOM_LENGTH)
    return _format(random_part + _check_symbol(random_part))


# Bytes below 240 (the largest multiple of 30 under 256) map uniformly onto the alphabet; the
# others are dropped. One read of the system's CSPRNG per code: `secrets.choice` read it once
# per symbol (eleven os.urandom calls per complaint).
_UNBIASED = 256 - 256 % _N


def _random_symbols(count: int) -> str:
    while True:
        drawn = [b for b in secrets.token_bytes(count + 5) if b < _UNBIASED]
        if len(drawn) >= count:
            return "".join(ALPHABET[b % _N] for b in drawn[:count])


def normalize_tracking_code(user_input: object) -> str | None:
    """The canonical form of what a person typed, or None if it cannot be a tracking code.

    ``" dms 7kq4 mx9t 2bh3 "``, ``"7KQ4-MX9T-2BH3"`` and ``"DMS7KQ4MX9T2BH3"`` all give
    ``"DMS-7KQ4-MX9T-2BH3"`` (when the check symbol matches).
    """
    if not isinstance(user_input, str) or len(user_input) > 64:
        return None
    compact = _SEPARATORS.sub("", user_input).upper()
    # The prefix consists of alphabet symbols, so only the length tells prefix from body.
    if len(compact) == len(PREFIX) + BODY_LENGTH and compact.startswith(PREFIX):
        compact = compact[len(PREFIX) :]
    if len(compact) != BODY_LENGTH or any(symbol not in _INDEX for symbol in compact):
        return None
    if _check_symbol(compact[:-1]) != compact[-1]:
        return None
    return _format(compact)
