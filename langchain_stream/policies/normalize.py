"""Text normalisation before sensitive-data matching: undo the disguises that keep a pattern
from seeing what a reader (or a cloud model) sees.

In order: HTML entities (twice, for double encoding), URL percent-escapes and JSON/Python
``\\uXXXX`` escapes are decoded; Unicode NFKC folds fullwidth and compatibility forms
(``＠`` → ``@``, ``１`` → ``1``); format characters (zero-width spaces and joiners, soft
hyphens, bidi marks: category ``Cf``) are removed; digits of any script become ASCII digits
and dashes of any kind ``-``; bracketed ``[at]`` / ``(dot)`` spellings become ``@`` / ``.``.
The result is for matching only: it is never sent anywhere.

:func:`rejoined` goes one step further, for values split or spelled to slip past a pattern:
line breaks are removed, letters or digits spelled out one by one (``4 1 1 1 …``) are joined
up, digits written as words (``four one one one``) become digits, and an address read out
(``jane dot doe at uni dot edu``) is written as one. :func:`base64_texts` decodes the base64
runs of a text that hold text.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from urllib.parse import unquote

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")
_NON_ASCII_DIGIT = re.compile(r"[^\x00-\x7f]")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u2e3a\u2e3b\ufe58\ufe63]")
# Patterns that may start with blanks start only where a run of blanks does: tried at every
# blank of a long run, they would take quadratic time.
_LINE_BREAK = re.compile(r"(?<![ \t])[ \t]*(?:\r\n|\r|\n)[ \t]*")
_SPELLED_OUT = re.compile(r"(?<!\S)\w(?: \w(?!\S)){5,}")
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT_WORD = {name: str(digit) for digit, name in enumerate(_DIGIT_NAMES)}
_DIGIT_WORDS = re.compile(
    r"(?i)\b(?:zero|one|two|three|four|five|six|seven|eight|nine)"
    r"(?:[\s,-]+(?:zero|one|two|three|four|five|six|seven|eight|nine)\b){3,}"
)
_SPOKEN_ADDRESS = re.compile(
    r"(?i)\b([\w+'-]+(?:\s+dot\s+[\w+'-]+)*)\s+at\s+([\w-]+(?:\s+dot\s+[\w-]+)+)\b"
)
_MAIL_CUE = re.compile(r"(?i)\b(?:e-?mail|mail|contact|write|reach|address)")
_BASE64_RUN = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{12,}={0,2}(?![\w+/=-])")
_BRACKETED_AT = re.compile(r"(?<!\s)\s*[\[({<]\s*(?:at|@)\s*[\])}>]\s*", re.IGNORECASE)
_BRACKETED_DOT = re.compile(r"(?<!\s)\s*[\[({<]\s*(?:dot|\.)\s*[\])}>]\s*", re.IGNORECASE)


def _without_format_characters(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _ascii_digits(text: str) -> str:
    def fold(match: re.Match[str]) -> str:
        char = match.group()
        value = unicodedata.digit(char, None)
        return str(value) if value is not None else char

    return _NON_ASCII_DIGIT.sub(fold, text)


def _unescape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1) or match.group(2), 16))
    return "" if 0xD800 <= ord(char) <= 0xDFFF else char


def normalize(text: str) -> str:
    """``text`` as sensitive-data patterns should see it (see the module's docstring)."""
    if "&" in text:
        text = html.unescape(html.unescape(text))
    if "%" in text and _PERCENT_ESCAPE.search(text):
        text = unquote(text, errors="ignore")
    if "\\" in text:
        text = _UNICODE_ESCAPE.sub(_unescape, text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _without_format_characters(text)
        text = _ascii_digits(text)
        text = _DASHES.sub("-", text)
    if "[" in text or "(" in text or "{" in text or "<" in text:
        text = _BRACKETED_AT.sub("@", text)
        text = _BRACKETED_DOT.sub(".", text)
    return text


def rejoined(normal: str) -> str:
    """Normalised text with line breaks removed and spelled-out characters joined up (see
    the module's docstring); ``normal`` itself when there is nothing to join."""
    if "\n" in normal or "\r" in normal:
        normal = _LINE_BREAK.sub("", normal)
    if " " in normal:
        normal = _SPELLED_OUT.sub(lambda m: m.group().replace(" ", ""), normal)
    return spelled_out(normal)


def _digits_of(match: re.Match[str]) -> str:
    return "".join(_DIGIT_WORD[w.lower()] for w in re.findall(r"[A-Za-z]+", match.group()))


def _spoken_address(text: str) -> str:
    def write(match: re.Match[str]) -> str:
        local, domain = match.group(1), match.group(2)
        # "look at the dot com era" is no address: a plain word before "at" needs a cue.
        plain_local = re.fullmatch(r"[A-Za-z]+", local) is not None
        if plain_local and not _MAIL_CUE.search(text, max(0, match.start() - 60), match.start()):
            return match.group()
        dotted = re.compile(r"(?i)\s+dot\s+")
        return dotted.sub(".", local) + "@" + dotted.sub(".", domain)

    return _SPOKEN_ADDRESS.sub(write, text)


def spelled_out(normal: str) -> str:
    """Digits written as words and addresses read out, written as such."""
    lowered = normal.lower()
    if any(w in lowered for w in ("one", "two", "three", "four", "five", "six", "seven")):
        normal = _DIGIT_WORDS.sub(_digits_of, normal)
        normal = re.sub(r"\+\s+(?=\d)", "+", normal)  # "plus one six one seven ..."
    if " at " in lowered and " dot " in lowered:
        normal = _spoken_address(normal)
    return normal


def base64_texts(text: str) -> list[str]:
    """The text held in ``text``'s base64 runs (standard or URL-safe alphabet)."""
    found = []
    for match in _BASE64_RUN.finditer(text):
        run = match.group().rstrip("=")
        padded = run + "=" * (-len(run) % 4)
        try:
            raw = base64.b64decode(padded, altchars=b"-_" if "-" in run or "_" in run else None)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded.isprintable() or all(c.isprintable() or c.isspace() for c in decoded):
            found.append(decoded)
    return found
