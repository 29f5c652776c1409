"""Normalisation before sensitive-data matching: each disguise undone."""

from __future__ import annotations

import pytest

from langchain_stream.policies.normalize import base64_texts, normalize, rejoined


@pytest.mark.parametrize(
    ("disguised", "plain"),
    [
        ("jane.doe＠uni．edu", "jane.doe@uni.edu"),  # fullwidth forms (NFKC)
        ("ja\u200bne@u\u200dni.e\u2060du\ufeff", "jane@uni.edu"),  # zero-width characters
        ("jane&#64;uni&period;edu", "jane@uni.edu"),  # HTML entities
        ("jane&amp;#64;uni.edu", "jane@uni.edu"),  # double-encoded entities
        ("jane%40uni.edu", "jane@uni.edu"),  # percent-escapes
        ("jane\\u0040uni\\x2eedu", "jane@uni.edu"),  # JSON / Python escapes
        ("123\u201345\u20146789", "123-45-6789"),  # dashes of any kind
        ("٤١١١", "4111"),  # digits of another script
        ("jane [at] uni (dot) edu", "jane@uni.edu"),  # bracketed spellings
        ("plain ascii text, unchanged", "plain ascii text, unchanged"),
    ],
)
def test_each_disguise_is_undone(disguised: str, plain: str) -> None:
    assert normalize(disguised) == plain


def test_rejoined_removes_line_breaks_and_joins_spelled_out_characters() -> None:
    assert rejoined("card 4111 1111\n 1111 1111") == "card 4111 11111111 1111"
    assert rejoined("iban D E 8 9 3 7 0 4 now") == "iban DE893704 now"
    assert rejoined("a b c") == "a b c"  # too short a run to be a spelled-out value
    assert rejoined("one line") == "one line"


def test_a_lone_surrogate_escape_is_dropped_not_decoded() -> None:
    assert normalize("x\\ud800y") == "xy"


def test_spelled_digits_and_read_out_addresses_are_written_as_such() -> None:
    assert rejoined("card four one one one, one one one one") == "card 41111111"
    assert rejoined("mail me: jane dot doe at uni dot edu") == "mail me: jane.doe@uni.edu"
    # A plain word before "at", with no cue that an address follows, is left alone.
    assert rejoined("look at the dot com era") == "look at the dot com era"
    assert rejoined("one two three") == "one two three"


def test_base64_runs_that_hold_text_are_decoded() -> None:
    assert base64_texts("decode amFuZUB1bmkuZWR1 please") == ["jane@uni.edu"]
    assert base64_texts("url-safe YT8-fn4_Pn5h") == ["a?>~~?>~a"]
    assert base64_texts("internationalization and counterrevolutionary") == []
