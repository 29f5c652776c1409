"""The sensitive-data detector."""

from __future__ import annotations

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
