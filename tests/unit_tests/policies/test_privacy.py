"""The sensitive-data detector."""

from __future__ import annotations

import time

import pytest

from langchain_stream.policies import SensitiveDataDetector


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe@uni.edu about it", "email"),
        ("my number is +1 617-555-0134", "phone"),
        ("SSN 123-45-6789", "national_id"),
        ("patient MRN: 00012345A", "medical_record_number"),
        ("card 4111 1111 1111 1111", "payment_card"),
        ("use sk-abcdefghijklmnop1234 for the API", "api_key"),
        ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
        ("-----BEGIN RSA PRIVATE KEY-----", "private_key"),
        ("password = hunter22!", "password"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
    ],
)
def test_detects_each_kind(text: str, kind: str) -> None:
    assert kind in SensitiveDataDetector().kinds([text])


@pytest.mark.parametrize(
    "text",
    [
        "What is 2 + 2?",
        "Results for 2023-2024 improved by 12 %.",
        "Prove that sqrt(2) is irrational.",
        "card 4111 1111 1111 1112",  # fails the Luhn check
    ],
)
def test_ordinary_text_is_clean(text: str) -> None:
    assert SensitiveDataDetector().kinds([text]) == []


def test_extra_patterns_and_no_text_in_findings() -> None:
    detector = SensitiveDataDetector({"project_code": r"\bPRJ-\d{4}\b"})
    findings = detector.find("see PRJ-1234 now")
    assert [(f.kind, f.start, f.end) for f in findings] == [("project_code", 4, 12)]
    assert not hasattr(findings[0], "text")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("card 4111 1111 1111 1111 12/27", "payment_card"),  # the expiry after it
        ("card 4111 1111 1111 1111 exp 12/27 cvv 123", "payment_card"),
        ("card 4111.1111.1111.1111", "payment_card"),
        ("card 4111_1111_1111_1111", "payment_card"),
        ("card 4111\n1111\n1111\n1111", "payment_card"),  # split over lines
        ("amex 3782 822463 10005", "payment_card"),
        ("mail jane.doe＠uni.edu", "email"),
        ("mail jane\u200b.doe@uni.edu", "email"),
        ("mail jane.doe&#64;uni.edu", "email"),
        ("mail jane@bücher.de", "email"),  # an internationalised domain
        ("mail jane@exаmple.com", "email"),  # a Cyrillic а: a homoglyph domain
        ("mail jane@xn--bcher-kva.de", "email"),
        ("ASIAY34FZKBOKMUTVV7A", "aws_access_key"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_key"),
        ("the secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_key"),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "private_key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key"),
        ("postgres://app:hunter2@db.internal:5432/main", "connection_url"),
        ("redis://:r3dis-pass@cache.local:6379/0", "connection_url"),
        ("call me at 6175550134", "phone"),  # bare ten digits
        ("call +44 20 7946 0958", "phone"),
        ("SSN 123 45 6789", "national_id"),  # space-separated
        ("my ssn is 123456789", "national_id"),  # bare, where the text says so
        ("iban gb82 west 1234 5698 7654 32", "iban"),  # lower case
        ("IBAN GB82-WEST-1234-5698-7654-32", "iban"),
        ("token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R", "api_key"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456", "api_key"),
    ],
)
def test_detects_the_disguised_and_the_narrowly_missed(text: str, kind: str) -> None:
    assert kind in SensitiveDataDetector().kinds([text])


@pytest.mark.parametrize(
    "text",
    [
        "Explain the ISBN 978-0-306-40615-7 check digit.",
        "The commit 3f786850e387550fdab836ed7e6dc881de23001b broke the build.",
        "UUID 123e4567-e89b-12d3-a456-426614174000 identifies the row.",
        "Ship to Cambridge MA 02139-4307.",  # a ZIP+4 code is not an SSN
        "Convert 1,234,567,890,123,456 to scientific notation.",
        "Use the @property decorator in Python classes.",
        "Why is postgres://host/db without credentials safe to log?",
        "Numbers 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
        "Version 1.22.3 of numpy was released on 2022-03-07.",
    ],
)
def test_ordinary_numbers_and_identifiers_are_clean(text: str) -> None:
    assert SensitiveDataDetector().kinds([text]) == []


def test_values_split_across_texts_are_found_joined() -> None:
    detector = SensitiveDataDetector()
    assert detector.kinds(["write to jane.doe", "@uni.edu"]) == ["email"]
    assert detector.kinds(["card 4111 1111", "1111 1111"]) == ["payment_card"]
    # Only the flow is joined: a key between the halves would hide nothing.
    assert detector.kinds(["jane.doe", "role", "@uni.edu"], flow=["jane.doe", "@uni.edu"]) == [
        "email"
    ]


def test_phone_region_is_a_setting() -> None:
    assert SensitiveDataDetector(phone_region="GB").kinds(["ring 020 7946 0958"]) == ["phone"]
    assert SensitiveDataDetector(phone_region="US").kinds(["ring 020 7946 0958"]) == []


@pytest.mark.parametrize(
    ("head", "unit", "tail"),
    [
        ("", "a", " @"),  # a long word before an "@"
        ("", "a.", " @x"),
        ("", " ", "x ("),  # a long run of blanks before a bracket
        ("", " ", "x\n"),
        ("", "@", ""),
    ],
)
def test_scanning_takes_linear_time(head: str, unit: str, tail: str) -> None:
    # A ratio, not a wall-clock limit: four times the text must cost about four times the time
    # (a backtracking pattern would cost sixteen). The thread's own CPU time, so that other
    # processes on a busy machine do not count.
    def fastest_scan(repeats: int) -> float:
        text = head + unit * repeats + tail
        timings = []
        for _ in range(3):
            started = time.thread_time()
            SensitiveDataDetector().kinds([text])
            timings.append(time.thread_time() - started)
        return min(timings)

    small, large = fastest_scan(25_000), fastest_scan(100_000)
    assert large < 8 * max(small, 1e-3)


def test_a_long_request_is_checked_off_the_event_loop() -> None:
    from langchain_core.messages import HumanMessage

    from langchain_stream.config import Settings
    from langchain_stream.policies.engine import LONG_SCAN_CHARS, PolicyEngine

    engine = PolicyEngine(Settings(database_url="none"))
    short, long = [HumanMessage("hi")], [HumanMessage("x" * (LONG_SCAN_CHARS + 1))]
    assert not engine.scans_long(short, {}, ["local", "cloud"])
    assert engine.scans_long(long, {}, ["local", "cloud"])
    assert not engine.scans_long(long, {}, ["local"])  # no cloud: nothing is scanned
