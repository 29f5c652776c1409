"""A sensitive-data detector: what must never leave the institution.

Kinds: ``email``, ``phone`` (Google's ``phonenumbers`` matcher: numbers valid in their region,
bare ten-digit ones included), ``national_id`` (US SSN, any separator, checked by
``python-stdnum``), ``medical_record_number``, ``payment_card`` (any separators, split over
lines, followed by an expiry: checked with the Luhn sum), ``iban`` (ISO 13616 mod-97 and the
country's length, by ``python-stdnum``), ``aws_access_key`` (``AKIA``/``ASIA``…),
``aws_secret_key`` (with or without its variable name), ``private_key`` (PEM, encrypted ones
included, and PuTTY), ``connection_url`` (a URL carrying a password), ``api_key`` (tokens of
the common providers, JWTs, bearer tokens) and ``password`` (assignments). Extra patterns come
from the settings.

Text is normalised first (:mod:`~langchain_stream.policies.normalize`), so fullwidth forms,
zero-width characters and HTML entities hide nothing. Findings carry the kind and the position
in the normalised text only: the matched text is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

from langchain_stream.policies.normalize import base64_texts, normalize, rejoined

DEFAULT_PHONE_REGION = "US"
"""Region of phone numbers written without a country code."""


@dataclass(frozen=True)
class SensitiveFinding:
    """One match: its kind and where it is in the normalised text (never the matched text)."""

    kind: str
    start: int
    end: int


_Finder = Callable[[str], Iterator[tuple[int, int]]]

# Patterns whose match is the finding, with no further check.
_PATTERNS: dict[str, str] = {
    "medical_record_number": (
        r"(?i)\b(?:MRN|medical record(?: number| no\.?)?)\s*[:#]?\s*[A-Z0-9-]{5,}\b"
    ),
    "aws_access_key": (
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"
    ),
    "private_key": (
        r"(?i)BEGIN[\s_-]*(?:[A-Z0-9]+[\s_-]*){0,3}?PRIVATE[\s_-]*KEY|PuTTY-User-Key-File-\d"
    ),
    "connection_url": (
        r"(?i)\b[a-z][a-z0-9+.-]{1,30}://[^\s:/?#@\"'<>]*:[^\s/?#@\"'<>]+@[^\s/?#\"'<>]+"
    ),
    "api_key": (
        r"\b(?:sk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
        r"|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
        r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{24,}=*"
    ),
    "password": (
        r"(?i)\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token"
        r"|auth[_-]?token|token)[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{6,}"
    ),
}

# An e-mail address is looked for around each "@", in windows as long as an address's parts
# may be (a pattern over the whole text would take quadratic time on a long word). Unicode
# letters in both parts: internationalised and homoglyph domains are addresses too.
_AT = re.compile(r"\s?@\s?")
_LOCAL_PART = re.compile(r"[\w.+%'-]{1,64}$")
_DOMAIN = re.compile(r"[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.(?:xn--[\w-]{1,59}|[^\W\d_]{2,63})(?!\w)")

# Words one of which a text must hold (lower-cased) for a pattern to be worth running.
_HINTS: dict[str, tuple[str, ...]] = {
    "connection_url": ("://",),
    "private_key": ("private", "putty"),
    "medical_record_number": ("mrn", "medical record"),
    "password": ("pass", "pwd", "secret", "key", "token"),
}
_SEVEN_DIGITS = re.compile(r"(?:\d\D*){7}")

# Digit groups joined by separators: candidates for cards (checked by window and Luhn).
_DIGIT_GROUPS = re.compile(r"(?<!\d)\d+(?:[ \t\r\n\-./_|*\u00b7\u2022]{1,3}\d+)*")
_GROUP = re.compile(r"\d+")
_SSN = re.compile(r"(?<![\d-])(\d{3})([\s./-]{0,2})(\d{2})([\s./-]{0,2})(\d{4})(?![\d-])")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social[ -]security|soc\.? ?sec)\b")
_IBAN = re.compile(r"(?i)(?<![A-Z0-9])[A-Z]{2}\d{2}(?:[ \-.]?[A-Z0-9]){10,32}")
_AWS_SECRET_NAMED = re.compile(
    r"(?i)aws.{0,24}?(?:secret|private)[\w ]{0,24}?[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
)
_AWS_SECRET_BARE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for at in _AT.finditer(text):
        local = _LOCAL_PART.search(text, max(0, at.start() - 64), at.start())
        domain = _DOMAIN.match(text, at.end(), at.end() + 256)
        if local is not None and domain is not None:
            yield local.start(), domain.end()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for run in _DIGIT_GROUPS.finditer(text):
        groups = list(_GROUP.finditer(run.group()))
        if sum(len(g.group()) for g in groups) < 13:
            continue
        found = _card_window(groups)
        if found is not None:
            yield run.start() + found[0], run.start() + found[1]


def _card_window(groups: list[re.Match[str]]) -> tuple[int, int] | None:
    """The first run of consecutive groups that reads as a card number: 13–19 digits, an
    issuer's first digit (2–6), the Luhn sum, and a card's grouping (one block, single digits,
    or up to six blocks of two or more: an expiry or CVV after it is not part of it)."""
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += groups[last].group()
            if len(digits) > 19:
                break
            window = groups[first : last + 1]
            if len(digits) < 13 or digits[0] not in "23456" or not _card_grouping(window):
                continue
            if luhn.is_valid(digits):
                return groups[first].start(), groups[last].end()
    return None


def _card_grouping(window: list[re.Match[str]]) -> bool:
    sizes = [len(g.group()) for g in window]
    return len(sizes) == 1 or all(s == 1 for s in sizes) or (len(sizes) <= 6 and min(sizes) >= 2)


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        compact = re.sub(r"[ \-.]", "", candidate).upper()
        # The candidate may run on into the next word: the longest valid prefix is the IBAN.
        for length in range(min(len(compact), 34), 14, -1):
            if stdnum_iban.is_valid(compact[:length]):
                yield match.start(), match.end()
                break


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for match in _SSN.finditer(text):
        digits = match.group(1) + match.group(3) + match.group(5)
        if not stdnum_ssn.is_valid(digits):
            continue
        # Nine digits not grouped 3-2-4 (a ZIP+4 code, a bare number) are an SSN only where
        # the text says so.
        grouped = bool(match.group(2)) and bool(match.group(4))
        if not grouped and not _SSN_CONTEXT.search(text, max(0, match.start() - 60), match.start()):
            continue
        yield match.span()


def _aws_secrets(text: str) -> Iterator[tuple[int, int]]:
    for match in _AWS_SECRET_NAMED.finditer(text):
        yield match.span(1)
    for match in _AWS_SECRET_BARE.finditer(text):
        key = match.group()
        # A secret key mixes cases and digits; hex digests and words do not.
        if re.search(r"[A-Z]", key) and re.search(r"[a-z]", key) and re.search(r"\d", key):
            yield match.span()


def _phone_finder(region: str) -> _Finder:
    def find(text: str) -> Iterator[tuple[int, int]]:
        if not _SEVEN_DIGITS.search(text):
            return
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            yield match.start, match.end

    return find


def _pattern_finder(pattern: re.Pattern[str], hints: tuple[str, ...] = ()) -> _Finder:
    def find(text: str) -> Iterator[tuple[int, int]]:
        if hints and not any(hint in text.lower() for hint in hints):
            return
        for match in pattern.finditer(text):
            yield match.span()

    return find


_CHECKED_FINDERS: dict[str, _Finder] = {
    "email": _emails,
    "payment_card": _cards,
    "iban": _ibans,
    "national_id": _ssns,
    "aws_secret_key": _aws_secrets,
}
"""Kinds found by code that checks each candidate (checksums, context words, character mix)."""


class SensitiveDataDetector:
    """Finds sensitive data in text.

    Args:
        extra_patterns: more kinds, kind → regular expression (matched on normalised text).
        phone_region: the region of phone numbers written without a country code.
    """

    def __init__(
        self,
        extra_patterns: Mapping[str, str] | None = None,
        phone_region: str = DEFAULT_PHONE_REGION,
    ) -> None:
        finders: dict[str, _Finder] = {
            kind: _pattern_finder(re.compile(pattern), _HINTS.get(kind, ()))
            for kind, pattern in _PATTERNS.items()
        }
        finders.update(_CHECKED_FINDERS, phone=_phone_finder(phone_region))
        for kind, pattern in (extra_patterns or {}).items():
            finders[kind] = _pattern_finder(re.compile(pattern))
        self._finders = finders

    @property
    def kinds_known(self) -> list[str]:
        """Every kind this detector looks for."""
        return sorted(self._finders)

    def find(self, text: str) -> list[SensitiveFinding]:
        """Every finding in ``text`` (positions in its normalised form)."""
        return self._find(normalize(text))

    def _find(self, normal: str) -> list[SensitiveFinding]:
        return [
            SensitiveFinding(kind, start, end)
            for kind, finder in self._finders.items()
            for start, end in finder(normal)
        ]

    def _kinds_in(self, text: str, *, decode: bool = True) -> set[str]:
        """Kinds in ``text``, normalised, in its rejoined form (split or spelled-out values
        joined up), and in the text its base64 runs hold."""
        normal = normalize(text)
        found = {f.kind for f in self._find(normal)}
        joined = rejoined(normal)
        if joined != normal:
            found.update(f.kind for f in self._find(joined))
        if decode:
            for decoded in base64_texts(normal):
                found.update(self._kinds_in(decoded, decode=False))
        return found

    def kinds(self, texts: Iterable[str], *, flow: Iterable[str] | None = None) -> list[str]:
        """The sorted kinds of sensitive data in any of ``texts``, or split across the texts
        of ``flow`` (by default ``texts``): joined, as a reader of the whole request reads
        them."""
        texts = [t for t in texts if t]
        joined = [t for t in flow if t] if flow is not None else texts
        # One pass over all texts, a line apart (each pattern stops at a line break as at the
        # end of a text), rather than one pass per text: a payload holds many short strings.
        found = self._kinds_in("\n".join(texts)) if texts else set()
        if len(joined) > 1:
            found.update(self._kinds_in("".join(joined)))
        return sorted(found)
