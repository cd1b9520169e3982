"""True positives and true negatives per built-in detector (pure cores, tables)."""

from __future__ import annotations

import pytest

from portico.dlp import Scanner

SCANNER = Scanner(decode=False)
GH = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"

POSITIVES = [
    ("card", "pay with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
    ("card", "amex 3782-822463-10005.", "3782-822463-10005"),
    ("card", "mc 5555555555554444", "5555555555554444"),
    ("iban", "send to DE89 3704 0044 0532 0130 00 EUR", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("us_ssn", "ssn 536-22-1234 on file", "536-22-1234"),
    ("us_ssn", "SSN: 536221234", "536221234"),
    ("fr_nir", "NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93"),
    ("de_idnr", "Steuer-ID: 36574261809", "36574261809"),
    ("de_idnr", "tin 36574261809", "36574261809"),  # lower-case keyword: the old literal gate missed it
    ("nl_bsn", "BSN 111222333", "111222333"),
    ("email", "write to john.doe+x@example.co.uk please", "john.doe+x@example.co.uk"),
    ("phone", "call +1 415 555 2671 now", "+1 415 555 2671"),
    ("phone", "office (415) 555-2671", "(415) 555-2671"),
    ("ipv4", "host 10.0.0.1 is down", "10.0.0.1"),
    ("ipv6", "addr 2001:db8::1 up", "2001:db8::1"),
    ("aws_access_key_id", "key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws_secret_access_key",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("gcp_api_key", "k=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("github_token", f"token {GH}", GH),
    ("gitlab_token", "glpat-a1B2c3D4e5F6g7H8i9J0", "glpat-a1B2c3D4e5F6g7H8i9J0"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGh1234", "xoxb-123456789012-1234567890123-AbCdEfGh1234"),
    ("stripe_key", "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2", "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2"),
    ("anthropic_key", "sk-ant-api03-" + "aB3" * 12, "sk-ant-api03-" + "aB3" * 12),
    ("openai_key", "sk-proj-" + "x9Y" * 15, "sk-proj-" + "x9Y" * 15),
    (
        "jwt",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    (
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3\n-----END RSA PRIVATE KEY-----",
    ),
]

NEGATIVES = [
    ("card with a bad Luhn digit", "order 4111 1111 1111 1112"),
    ("card-length number outside any issuer range", "ref 9111111111111111"),
    ("millisecond timestamp", "ts 1700000000000"),
    ("mixed separators in a card", "4111-1111 1111-1111"),
    ("IBAN with a wrong check digit", "DE88 3704 0044 0532 0130 00"),
    ("SSN in area 666", "666-12-3456"),
    ("SSN in area 9xx", "912-12-3456"),
    ("SSN with group 00", "536-00-1234"),
    ("bare nine digits without context", "invoice 536221234"),
    ("eleven digits without a tax-id keyword", "order 36574261809"),
    ("UUID", "id 123e4567-e89b-12d3-a456-426614174000"),
    ("ISO timestamp", "at 2026-11-24T03:46:10Z"),
    ("date", "on 2026-11-24"),
    ("version string", "upgraded to v1.2.3.4 and version 10.0.0.1"),
    ("dotted number longer than an address", "oid 1.3.6.1.4.1"),
    ("octet over 255", "256.1.1.1"),
    ("time of day", "meet 12:30:45"),
    ("MAC address", "mac 00:1a:2b:3c:4d:5e"),
    ("C++ scope", "std::vector<int>"),
    ("git SHA", "commit 3f786850e387550fdab836ed7e6dc881de23001b"),
    ("invoice number shaped like a phone", "INV-415-555-2671"),
    ("invoice number in a year", "2023-555-1234"),
    ("retina image name", "icon@2x.png"),
    ("handle without a domain", "@alice said"),
    ("token prefix inside a word", "xghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"),
    ("project slug starting sk-", "sk-learn-regression-models"),
    ("JWT-like text whose header is not JSON", "eyJub3QganNvbg.eyJzdWIiOiIxIn0.c2ln"),
    ("public key block", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
    ("AWS-looking 40 chars without context", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("amount", "total $1,234.56"),
]


@pytest.mark.parametrize(("detector", "text", "value"), POSITIVES, ids=[p[0] + str(i) for i, p in enumerate(POSITIVES)])
def test_detector_finds_valid_value_exactly(detector, text, value):
    findings = SCANNER.find(text)
    assert [(f.detector, text[f.start : f.end]) for f in findings] == [(detector, value)]


@pytest.mark.parametrize(("why", "text"), NEGATIVES, ids=[n[0] for n in NEGATIVES])
def test_look_alike_is_not_a_finding(why, text):
    assert SCANNER.find(text) == []


def test_addresses_next_to_each_other_are_all_found():
    # One run of digits, spaces and dots with six dots and eight digits: the old numeric gate did not take it.
    text = "peers 1.2.3.4 5.6.7.8 up"
    assert [(f.detector, text[f.start : f.end]) for f in SCANNER.find(text)] == [
        ("ipv4", "1.2.3.4"),
        ("ipv4", "5.6.7.8"),
    ]


def test_lone_surrogates_do_not_stop_the_scan():
    text = "\ud800 card 4111 1111 1111 1111 \udfff"
    assert [(f.detector, text[f.start : f.end]) for f in SCANNER.find(text)] == [("card", "4111 1111 1111 1111")]


def test_field_named_like_a_secret_makes_bare_key_a_finding():
    findings = SCANNER.scan({"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ssn": "536221234"})
    assert {(f.detector, f.path) for f in findings} == {
        ("aws_secret_access_key", "aws_secret_access_key"),
        ("us_ssn", "ssn"),
    }
