import math
import re
from collections import Counter

import pytest

from services.intake.domain.tracking import (
    ALPHABET,
    CODE_LENGTH,
    RANDOM_LENGTH,
    new_tracking_code,
    normalize_tracking_code,
)

CODE_SHAPE = re.compile(r"^DMS-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$")


@pytest.fixture(scope="module")
def hundred_thousand_codes():
    return [new_tracking_code() for _ in range(100_000)]


def body(code):
    return code.removeprefix("DMS-").replace("-", "")


def test_a_new_code_is_dms_then_three_groups_of_four_within_20_characters():
    code = new_tracking_code()
    assert CODE_SHAPE.match(code)
    assert len(code) == CODE_LENGTH <= 20


def test_the_alphabet_leaves_out_ambiguous_characters_and_u():
    for character in "0O1ILU":
        assert character not in ALPHABET
    assert len(set(ALPHABET)) == len(ALPHABET) == 30


def test_codes_use_only_alphabet_symbols(hundred_thousand_codes):
    used = set("".join(body(code) for code in hundred_thousand_codes[:1000]))
    assert used <= set(ALPHABET)


def test_the_random_part_carries_at_least_50_bits():
    assert RANDOM_LENGTH * math.log2(len(ALPHABET)) >= 50


def test_a_hundred_thousand_codes_are_all_different(hundred_thousand_codes):
    assert len(set(hundred_thousand_codes)) == len(hundred_thousand_codes)


def test_every_symbol_is_about_equally_likely_in_every_random_position(hundred_thousand_codes):
    expected = len(hundred_thousand_codes) / len(ALPHABET)  # 3333; sd about 57
    for position in range(RANDOM_LENGTH):
        counts = Counter(body(code)[position] for code in hundred_thousand_codes)
        assert set(counts) == set(ALPHABET)
        assert all(abs(n - expected) < 400 for n in counts.values()), (position, counts)


def test_consecutive_codes_are_not_sequential(hundred_thousand_codes):
    sample = hundred_thousand_codes[:1000]
    assert sample != sorted(sample)
    changed = [
        sum(a != b for a, b in zip(body(first)[:RANDOM_LENGTH], body(second)[:RANDOM_LENGTH]))
        for first, second in zip(sample, sample[1:])
    ]
    assert sum(changed) / len(changed) > 9  # random: 11 * 29/30 = 10.6


def test_every_new_code_is_already_normalized(hundred_thousand_codes):
    for code in hundred_thousand_codes[:1000]:
        assert normalize_tracking_code(code) == code


@pytest.fixture
def code():
    return new_tracking_code()


def test_lowercase_input_is_normalized(code):
    assert normalize_tracking_code(code.lower()) == code


def test_spaces_instead_of_dashes_are_accepted(code):
    assert normalize_tracking_code("  " + code.replace("-", " ") + " ") == code


def test_input_without_any_separator_is_accepted(code):
    assert normalize_tracking_code(code.replace("-", "")) == code


def test_the_dms_prefix_is_optional(code):
    assert normalize_tracking_code(code.removeprefix("DMS-")) == code
    assert normalize_tracking_code(body(code).lower()) == code


def test_typographic_dashes_from_phone_keyboards_are_accepted(code):
    assert normalize_tracking_code(code.replace("-", "\u2013")) == code


@pytest.mark.parametrize(
    "typed",
    [
        None,
        42,
        "",
        "   ",
        "DMS",
        "DMS-7KQ4-MX9T",
        "DMS-7KQ4-MX9T-2BH3-7KQ4",
        "XYZ-7KQ4-MX9T-2BH3",
        "DMS/7KQ4/MX9T/2BH3",
        "1; DROP TABLE complaints",
        "x" * 500,
    ],
)
def test_input_that_cannot_be_a_code_gives_none(typed):
    assert normalize_tracking_code(typed) is None


@pytest.mark.parametrize("ambiguous", list("0O1ILU"))
def test_excluded_characters_are_not_guessed_but_rejected(code, ambiguous):
    typed = code[:-1] + ambiguous
    assert normalize_tracking_code(typed) is None


def test_any_single_mistyped_symbol_is_caught_by_the_check_symbol(code):
    compact = body(code)
    for position in range(len(compact)):
        for symbol in ALPHABET:
            if symbol != compact[position]:
                typo = compact[:position] + symbol + compact[position + 1 :]
                assert normalize_tracking_code(typo) is None, typo
