"""A sensitive-data detector: what must never leave the institution.

It finds e-mail addresses, phone numbers, national identifiers (US SSN and similar formats),
medical record numbers, payment card numbers (checked with the Luhn sum), IBANs, and secrets
(API keys, tokens, private keys, passwords in assignments). Extra patterns come from the
settings. Findings carry the kind and position only: the matched text is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SensitiveFinding:
    """One match: its kind and where it is (never the matched text)."""

    kind: str
    start: int
    end: int


_BUILTIN: dict[str, str] = {
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    "phone": (
        # Not inside a longer run of digit groups (a card or account number).
        r"(?<![\w+])(?<!\d[\s.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])"
        r"\d{3,4}[\s.-]\d{3,4}\b(?![\s.-]?\d)"
    ),
    "national_id": r"\b\d{3}-\d{2}-\d{4}\b",
    "medical_record_number": (
        r"\b(?:MRN|medical record(?: number| no\.?)?)\s*[:#]?\s*[A-Z0-9-]{5,}\b"
    ),
    "payment_card": r"\b(?:\d[ -]?){13,19}\b",
    "iban": r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b",
    "api_key": (
        r"\b(?:sk-[A-Za-z0-9_-]{16,}|sk_live_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
    ),
    "private_key": r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |PGP )?PRIVATE KEY",
    "password": r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|token)\s*[:=]\s*\S{6,}",
}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class SensitiveDataDetector:
    """Finds sensitive data in text; patterns are regular expressions keyed by kind."""

    def __init__(self, extra_patterns: Mapping[str, str] | None = None) -> None:
        patterns = {**_BUILTIN, **(extra_patterns or {})}
        self._patterns = {kind: re.compile(pattern) for kind, pattern in patterns.items()}

    def find(self, text: str) -> list[SensitiveFinding]:
        """Every finding in ``text``."""
        findings: list[SensitiveFinding] = []
        for kind, pattern in self._patterns.items():
            for match in pattern.finditer(text):
                if kind == "payment_card":
                    digits = re.sub(r"\D", "", match.group())
                    if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
                        continue
                findings.append(SensitiveFinding(kind, match.start(), match.end()))
        return findings

    def kinds(self, texts: Iterable[str]) -> list[str]:
        """The sorted kinds of sensitive data found in any of ``texts``."""
        return sorted({f.kind for text in texts for f in self.find(text)})
