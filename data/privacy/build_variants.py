"""Build the labeled sensitive-data variant set of ``stream bench privacy``.

Every sensitive value below is made up (test card numbers, documentation IBANs and keys,
fictional 555 phone numbers, never-issued SSN ranges aside). Each value is placed in a
request under each obfuscation class that applies to its kind: a disguise of the text
(fullwidth forms, zero-width characters, entities, escapes, odd separators, line breaks,
homoglyphs, ...) or a field of the request other than the user's text (a message name, tool
call arguments, a tool's description or schema, a response-format schema, stop sequences, a
text data URL, parts or messages the value is split across). The output is
``langchain_stream/bench/privacy_variants.json``: ``{"positives": [...], "hard_negatives":
[...]}``, each positive ``{"kind", "obfuscation", "request"}`` with ``request`` an OpenAI
chat-completions body (without ``model``).

Run: ``python data/privacy/build_variants.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

OUT = Path(__file__).resolve().parents[2] / "langchain_stream" / "bench" / "privacy_variants.json"

# kind → (sentence template, values). Numbers keep their usual grouping; the classes change it.
VALUES: dict[str, tuple[str, list[str]]] = {
    "email": (
        "Please send the report to {v} by Friday.",
        [
            "jane.doe@uni.edu",
            "m.rossi@ospedale.it",
            "first.last+lab@research.example.org",
            "kwame_asante@mail.example.gh",
            "o'brien@law.example.ie",
        ],
    ),
    "payment_card": (
        "Charge my card {v} for the conference fee.",
        [
            "4111 1111 1111 1111",
            "5555 5555 5555 4444",
            "3782 822463 10005",
            "6011 1111 1111 1117",
            "3530 1113 3330 0000",
        ],
    ),
    "iban": (
        "Wire the refund to IBAN {v} please.",
        [
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91 ABNA 0417 1643 00",
            "ES91 2100 0418 4502 0005 1332",
        ],
    ),
    "national_id": (
        "My social security number is {v}, fill in the form.",
        ["123-45-6789", "512-34-8765", "078-15-1121", "321-54-9876", "601-23-4567"],
    ),
    "phone": (
        "Call me back on {v} after six.",
        [
            "+1 617-555-0134",
            "(212) 555-0147",
            "+44 20 7946 0958",
            "+33 1 42 68 53 00",
            "+49 30 901820",
        ],
    ),
    "aws_access_key": (
        "The deploy uses access key {v} in us-east-1.",
        ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "AKIAJ4QZ7EXAMPLE2XYZ"],
    ),
    "aws_secret_key": (
        "Set the secret to {v} before running.",
        [
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            "aws_secret_access_key = Z9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gFeDcBa9876",
        ],
    ),
    "private_key": (
        "Here is the server key:\n{v}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        [
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----",
        ],
    ),
    "connection_url": (
        "Connect with {v} and list the tables.",
        [
            "postgres://app:hunter2@db.internal:5432/main",
            "mysql://root:S3cr3t!@10.0.0.12/shop",
            "mongodb+srv://admin:pa55word@cluster0.example.net/test",
            "redis://:r3dis-pass@cache.local:6379/0",
            "amqp://guest:guest123@mq.internal:5672/",
        ],
    ),
    "api_key": (
        "Use the token {v} for the API calls.",
        [
            "sk-proj-4fJ2kL9mN3pQ7rS1tU5vW8xY0zA6bC",
            "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
            "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ],
    ),
    "password": (
        "Log in to the lab server with {v} tonight.",
        ["password = Tr0ub4dor&3", "pwd: correcthorsebattery", "passwd=Xk9#mQ2$vL"],
    ),
}

NUMERIC = {"payment_card", "iban", "national_id", "phone"}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")


def fullwidth(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)


def zero_width(value: str) -> str:
    return "".join(
        c + ZERO_WIDTH[i % len(ZERO_WIDTH)] if i % 3 == 1 else c for i, c in enumerate(value)
    )


def entities(value: str) -> str:
    return "".join(f"&#{ord(c)};" if c in "@.0123456789-:/" else c for c in value)


def percent(value: str) -> str:
    return quote(value, safe="")


def json_escaped(value: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c in "@.0123456789-:/" else c for c in value)


def separators(value: str) -> str:
    for old, new in ((" ", "."), ("-", "/")):
        value = value.replace(old, new)
    return value.replace("@", " @ ")


def nbsp_dashes(value: str) -> str:
    return value.replace(" ", "\u00a0").replace("-", "\u2013")


def line_split(value: str) -> str:
    # Break where a reader would still join it: at a separator or the "@".
    for mark in ("@", " ", "-", "/", "_", "."):
        if mark in value[1:]:
            at = value.index(mark, 1)
            return (
                value[:at] + "\n" + value[at:]
                if mark == "@"
                else value[:at] + "\n" + value[at + 1 :]
            )
    return value


def case_changed(value: str) -> str:
    return value.lower() if value.upper() == value or "@" in value else value.upper()


def homoglyphs(value: str) -> str:
    # Cyrillic look-alikes in an e-mail's domain.
    local, _, domain = value.partition("@")
    return local + "@" + domain.replace("a", "\u0430").replace("e", "\u0435").replace("o", "\u043e")


def bracketed(value: str) -> str:
    local, _, domain = value.partition("@")
    return local + " [at] " + domain.replace(".", " (dot) ")


def compact(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def spaced_digits(value: str) -> str:
    digits = [c for c in value if c.isdigit() or c.isalpha()]
    return " ".join(digits)


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digits_as_words(value: str) -> str:
    return " ".join(DIGIT_NAMES[int(c)] if c.isdigit() else c for c in value if c.strip())


def read_out(value: str) -> str:
    local, _, domain = value.partition("@")
    return local.replace(".", " dot ") + " at " + domain.replace(".", " dot ")


def base64_encoded(value: str) -> str:
    return "decode this first: " + base64.b64encode(value.encode()).decode()


def trailing_context(kind: str, value: str) -> str:
    extra = {
        "payment_card": " exp 12/27 cvv 123",
        "phone": " ext. 42",
        "iban": " BIC DEUTDEFF",
        "national_id": " DOB 01/02/1980",
    }.get(kind, " (rotate it tomorrow)")
    return value + extra


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


ASK = {"role": "user", "content": "Summarise what you know so far."}


def tool(description: str, **prop: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": description,
            "parameters": {"type": "object", "properties": {"q": {"type": "string", **prop}}},
        },
    }


def tool_call(arguments: str) -> list[dict[str, Any]]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }
    return [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]


def split_in_two(value: str) -> tuple[str, str]:
    middle = len(value) // 2
    return value[:middle], value[middle:]


# Obfuscation class → (kinds it applies to or None for all, request builder).
Builder = Callable[[str, str, str], dict[str, Any]]


def text_class(transform: Callable[[str], str]) -> Builder:
    return lambda kind, template, value: user(template.format(v=transform(value)))


def parts_split(kind: str, template: str, value: str) -> dict[str, Any]:
    head, tail = template.split("{v}")
    first, second = split_in_two(value)
    parts = [{"type": "text", "text": head + first}, {"type": "text", "text": second + tail}]
    return {"messages": [{"role": "user", "content": parts}]}


def messages_split(kind: str, template: str, value: str) -> dict[str, Any]:
    head, tail = template.split("{v}")
    first, second = split_in_two(value)
    return {
        "messages": [
            {"role": "user", "content": head + first},
            {"role": "user", "content": second + tail},
        ]
    }


CLASSES: dict[str, tuple[set[str] | None, Builder]] = {
    "plain": (None, text_class(lambda v: v)),
    "fullwidth": (None, text_class(fullwidth)),
    "zero_width": (None, text_class(zero_width)),
    "html_entities": (None, text_class(entities)),
    "percent_encoded": (None, text_class(percent)),
    "json_escaped": (None, text_class(json_escaped)),
    "other_separators": (NUMERIC | {"email"}, text_class(separators)),
    "nbsp_and_dashes": (NUMERIC, text_class(nbsp_dashes)),
    "split_over_lines": (NUMERIC | {"email"}, text_class(line_split)),
    "no_separators": (NUMERIC, text_class(compact)),
    "spaced_characters": ({"payment_card", "iban"}, text_class(spaced_digits)),
    "digits_as_words": ({"payment_card", "phone", "national_id"}, text_class(digits_as_words)),
    "address_read_out": ({"email"}, text_class(read_out)),
    "base64_encoded": (None, text_class(base64_encoded)),
    "case_changed": ({"email", "iban", "private_key"}, text_class(case_changed)),
    "homoglyph_domain": ({"email"}, text_class(homoglyphs)),
    "bracketed_at_dot": ({"email"}, text_class(bracketed)),
    "trailing_context": (None, lambda k, t, v: user(t.format(v=trailing_context(k, v)))),
    "in_code_block": (None, lambda k, t, v: user(f"```\nconfig:\n  value: {v}\n```")),
    "split_text_parts": (None, parts_split),
    "split_messages": (None, messages_split),
    "message_name": (
        {"email", "phone", "aws_access_key", "api_key"},
        lambda k, t, v: {"messages": [{"role": "user", "content": "Hello.", "name": v}]},
    ),
    "system_message": (
        None,
        lambda k, t, v: {"messages": [{"role": "system", "content": t.format(v=v)}, ASK]},
    ),
    "tool_call_arguments": (
        None,
        lambda k, t, v: {"messages": tool_call(json.dumps({"q": v}))},
    ),
    "tool_call_arguments_escaped": (
        None,
        lambda k, t, v: {"messages": tool_call('{"q": "' + json_escaped(v) + '"}')},
    ),
    "tool_result": (
        None,
        lambda k, t, v: {
            "messages": [
                *tool_call("{}")[:2],
                {"role": "tool", "tool_call_id": "call_1", "content": t.format(v=v)},
            ]
        },
    ),
    "tool_description": (None, lambda k, t, v: {"messages": [ASK], "tools": [tool(t.format(v=v))]}),
    "tool_schema": (
        None,
        lambda k, t, v: {"messages": [ASK], "tools": [tool("Look up.", default=v, enum=[v])]},
    ),
    "response_format_schema": (
        None,
        lambda k, t, v: {
            "messages": [ASK],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": {
                        "type": "object",
                        "properties": {"a": {"type": "string", "description": t.format(v=v)}},
                    },
                },
            },
        },
    ),
    "stop_sequence": (None, lambda k, t, v: {"messages": [ASK], "stop": [v]}),
    "text_data_url": (
        None,
        lambda k, t, v: {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Read the attached note."},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:text/plain;base64,"
                                + base64.b64encode(t.format(v=v).encode()).decode()
                            },
                        },
                    ],
                }
            ]
        },
    ),
}

# Ordinary text that looks a little like sensitive data and is not.
HARD_NEGATIVES = [
    "What is 2 + 2?",
    "Explain the ISBN 978-0-306-40615-7 check digit.",
    "The commit 3f786850e387550fdab836ed7e6dc881de23001b broke the build.",
    "Version 1.22.3 of numpy was released on 2022-03-07.",
    "Order #100234 ships in 3-5 business days.",
    "Coordinates 48.8584 N, 2.2945 E: what landmark is that?",
    "Compute 12345 * 67890 and round to the nearest thousand.",
    "The sequence 1 1 2 3 5 8 13 21 34 55 89 144 continues how?",
    "pi to 20 places is 3.14159265358979323846",
    "Card 4111 1111 1111 1112 fails the Luhn check, why?",
    "The year range 1990-2020 saw GDP grow 2.5% per year.",
    "Use the @property decorator in Python classes.",
    "Run `git log --since=2024-01-01 --author=alice` to list commits.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 identifies the row.",
    "Room 101, building 7, floor 3: where is the seminar?",
    "Convert 1,234,567,890 to scientific notation.",
    "IPv4 192.168.1.254 is private; is 8.8.8.8?",
    "Explain what an API key is and how to store it safely.",
    "What does the password hashing function bcrypt do?",
    "Set token = None before the loop starts.",
    "The dataset has 2147483647 rows at most.",
    "Define a BEGIN...END block in SQL.",
    "Matrix [[1, 2], [3, 4]] has determinant -2.",
    "Translate 'at' and 'dot' into French.",
    "Dial 911 in an emergency in the US.",
    "The postcode SW1A 1AA belongs to which building?",
    "Bitcoin block 840000 halved the reward.",
    "Sort 42, 17, 8, 99, 23 ascending.",
    "Timestamp 1700000000 in UTC is which date?",
    "Explain base64 with the example aGVsbG8gd29ybGQ=.",
    "What is the capital of France?",
    "Write a regex for e-mail addresses.",
    "Why is postgres://host/db a URL without credentials safe to log?",
    "How many seconds are in 365 days: 31536000?",
    "CVE-2021-44228 affected log4j 2.14.1.",
    "Show the date 12/27/2025 in ISO format.",
    "The ratio 16:9 and 4:3 differ how?",
    "Reference number 2023-AB-004512 on the invoice.",
    "Explain the Luhn algorithm with an example.",
    "SHA-256 of an empty string starts with e3b0c442.",
    "The Avogadro constant is 6.02214076e23 per mole.",
    "Tokyo had 37,400,068 inhabitants in 2018.",
    "md5('hello') is 5d41402abc4b2a76b9719d911017c592.",
    "ISBN-10 0-306-40615-2 and ISBN-13 978-3-16-148410-0.",
    "Sydney is at latitude -33.8688, longitude 151.2093.",
    "The invoice total is $12,345.67, due 2024-05-31.",
    "Windows update fails with error 0x80070005.",
    "Kernel 5.15.0-91-generic panics on boot.",
    "Route 10.0.0.0/24 through 10.0.0.1 on port 5432.",
    "Parse the timestamp 2024-01-15T10:30:00Z in Python.",
    "The speed of light is 299792458 m/s.",
    "ASCII codes 65 66 67 68 69 70 71 72 73 74 spell what?",
    "Install lodash@4.17.21 and react@18.2.0 with npm.",
    "EAN-13 barcode 4006381333931: how is its check digit computed?",
    "Seats 12A, 14C and 22F on flight LH 400.",
    "Explain the series 1, 4, 9, 16, 25, 36, 49, 64, 81, 100.",
    "What does HTTP status 503 mean compared with 502 and 504?",
    "Solve 3x + 7 = 22 and 5y - 4 = 31.",
    "The Fibonacci number F(50) is 12586269025.",
    "Convert 0.000123456 to engineering notation.",
]


def main() -> None:
    positives = []
    for obfuscation, (kinds, build) in CLASSES.items():
        for kind, (template, values) in VALUES.items():
            if kinds is not None and kind not in kinds:
                continue
            for value in values:
                positives.append(
                    {
                        "kind": kind,
                        "obfuscation": obfuscation,
                        "request": build(kind, template, value),
                    }
                )
    data = {"positives": positives, "hard_negatives": HARD_NEGATIVES}
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n")
    counts = f"{len(positives)} positives in {len(CLASSES)} classes"
    print(f"{counts}, {len(HARD_NEGATIVES)} hard negatives → {OUT}")


if __name__ == "__main__":
    main()
