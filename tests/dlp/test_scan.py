"""Scanning nested JSON, decoding, redaction, custom detectors and the no-value guarantee."""

from __future__ import annotations

import base64
import copy
from urllib.parse import quote

import pytest

from portico.dlp import Finding, Scanner, fingerprint, keyword_detector, matched_text, redact, regex_detector, scan
from portico.errors import ConfigError

CALL = {
    "name": "crm.update",
    "arguments": {"card": "4111 1111 1111 1111", "note": "ok", "weird key": "bob@example.com"},
    "content": [{"type": "text", "text": "reach me at +1 415 555 2671 (ticket 2026-11-24)"}],
    "jane@example.com": 1,
    "count": 3,
}


def test_scan_reports_json_paths_and_offsets_for_nested_values():
    found = {(f.detector, f.path, f.in_key) for f in scan(CALL)}
    assert found == {
        ("card", "arguments.card", False),
        ("email", 'arguments["weird key"]', False),
        ("phone", "content[0].text", False),
        ("email", '["jane@example.com"]', True),
    }


@pytest.mark.parametrize(
    ("why", "value"),
    [
        ("base64", base64.b64encode(b"my card is 4111 1111 1111 1111 ok").decode()),
        ("base64url", base64.urlsafe_b64encode(b"key AKIAIOSFODNN7EXAMPLE??>>").decode()),
        ("percent-encoded", "https://x.test/?to=" + quote("bob@example.com", safe="")),
    ],
)
def test_encoded_secret_is_found_and_marked_with_its_encoding(why, value):
    (finding,) = scan({"v": value})
    assert finding.encoding in {"base64", "url"}


def test_base64_of_plain_text_or_binary_is_not_a_finding():
    blobs = [base64.b64encode(b"just a harmless sentence, nothing here").decode(), base64.b64encode(bytes(range(48)))]
    assert scan({"a": blobs[0], "b": blobs[1].decode()}) == []


def test_redaction_keeps_structure_and_masks_only_matches():
    original = copy.deepcopy(CALL)
    redacted = redact(CALL, scan(CALL))
    assert original == CALL
    assert redacted["arguments"]["card"] == "4111 **** **** 1111"
    assert redacted["arguments"]["note"] == "ok"
    assert redacted["arguments"]["weird key"] == "[REDACTED:email]"
    assert redacted["content"][0]["text"] == "reach me at [REDACTED:phone] (ticket 2026-11-24)"
    assert redacted["[REDACTED:email]"] == 1
    assert redacted["count"] == 3


def test_redaction_of_url_encoded_match_masks_only_the_encoded_value():
    value = {"u": "https://x.test/?to=bob%40example.com&page=2"}
    assert redact(value, scan(value)) == {"u": "https://x.test/?to=[REDACTED:email]&page=2"}


@pytest.mark.requirement("dlp:findings-never-hold-values")
def test_findings_never_contain_the_value():
    secret = "AKIAIOSFODNN7EXAMPLE"
    findings = scan({"k": f"key {secret}"})
    assert findings
    assert all(secret not in repr(f) and secret not in str(f) for f in findings)


def test_fingerprint_is_keyed_and_stable():
    text = "key AKIAIOSFODNN7EXAMPLE"
    (f,) = Scanner().find(text)
    value = matched_text(text, f)
    assert fingerprint(value, b"k1") == fingerprint(value, b"k1") != fingerprint(value, b"k2")
    assert value not in fingerprint(value, b"k1")


def test_admin_regex_and_keyword_detectors_find_their_matches():
    scanner = Scanner([regex_detector("ticket", r"PRJ-\d{4}"), keyword_detector("codename", ["Blue Falcon"])])
    found = [(f.detector, f.start) for f in scanner.find("see PRJ-1234 about blue falcon, not bluefalcon")]
    assert found == [("ticket", 4), ("codename", 19)]


@pytest.mark.parametrize("pattern", ["(", "a*"])
def test_bad_admin_regex_is_a_config_error(pattern):
    with pytest.raises(ConfigError):
        regex_detector("bad", pattern)


def test_empty_keyword_list_is_a_config_error():
    with pytest.raises(ConfigError):
        keyword_detector("none", [" "])


def test_overlapping_findings_keep_the_longest():
    f = Scanner([regex_detector("short", r"abc"), regex_detector("long", r"abcdef")]).find("xabcdefx")
    assert f == [Finding("long", 1, 7)]


@pytest.mark.parametrize("filler", ["lorem ipsum dolor sit amet ", "order #12345678 at 2026-11-24T10:00:00Z ok "])
def test_long_text_reports_offsets_of_the_original_string(filler):
    secrets = ["4111 1111 1111 1111", "536-22-1234", "+1 415 555 2671", "10.0.0.1", "DE89 3704 0044 0532 0130 00"]
    text = ""
    for s in secrets:
        text += filler * 40 + s + " "
    found = Scanner().find(text)
    assert sorted(text[f.start : f.end] for f in found) == sorted(secrets)


SA_KEY = (
    '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----'
    '\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"}'
)
AZURE = (
    "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + "Ab1+" * 21 + "Ab==;EndpointSuffix=core.windows.net"
)


@pytest.mark.parametrize(
    ("detector", "text"),
    [
        ("private_key", SA_KEY),
        ("azure_storage_key", AZURE),
        ("ipv6", "fe80:0000:0000:0000:0202:b3ff:fe1e:8329 is up"),
        ("ipv6", "bind ::1 only"),
        ("email", "nested " + base64.b64encode(base64.b64encode(b"mail alice@example.org now")).decode()),
    ],
)
def test_credentials_and_addresses_in_realistic_wrappings_are_found(detector, text):
    assert [f.detector for f in Scanner().find(text)] == [detector]


@pytest.mark.parametrize(
    "text",
    [
        "internationalizationLocalizationHelperFactory",
        "/usr/local/lib/python3.11/site-packages/portico",
        "sha256:3f786850e387550fdab836ed7e6dc881de23001b3f786850e387550fdab836ed",
        "id 123e4567-e89b-12d3-a456-426614174000 and 123e4567-e89b-12d3-a456-426614174001",
    ],
)
def test_long_identifiers_paths_and_digests_are_not_decoded_into_findings(text):
    assert Scanner().find(text) == []


def test_base64_blob_in_prose_is_masked_alone():
    blob = base64.b64encode(b"password for card 5555555555554444").decode()
    value = {"text": f"attachment: {blob} (see above)"}
    assert redact(value, scan(value)) == {"text": "attachment: [REDACTED:card] (see above)"}


def test_card_mask_keeps_separators_and_first_and_last_four():
    value = ["amex 3782-822463-10005", 7, None, True]
    assert redact(value, scan(value)) == ["amex 3782-******-*0005", 7, None, True]


def test_custom_detectors_run_beside_the_defaults():
    from portico.dlp import default_detectors

    scanner = Scanner([*default_detectors(), keyword_detector("project", ["Project Nightjar"])])
    found = {f.detector for f in scanner.scan({"q": "Project Nightjar budget, contact bob@example.com"})}
    assert found == {"project", "email"}


@pytest.mark.parametrize("prefix", ["cafe, naive", "café, naïve"])
def test_findings_do_not_depend_on_the_text_being_ascii(prefix):
    blob = base64.b64encode(b"password for card 5555555555554444").decode()
    text = prefix + f" order #12345678 at 2026-11-24 ssn 536-22-1234 then {blob} and 10.0.0.1 ok" * 4
    found = Scanner().find(text)
    expected = [("us_ssn", "536-22-1234", None), ("card", blob, "base64"), ("ipv4", "10.0.0.1", None)]
    assert [(f.detector, text[f.start : f.end], f.encoding) for f in found] == expected * 4


def test_repeated_strings_are_reported_at_every_path():
    rows = [{"bob@example.com": "bob@example.com", "note": "ok"}] * 2
    assert [(f.path, f.in_key) for f in scan(rows)] == [
        ('[0]["bob@example.com"]', True),
        ('[0]["bob@example.com"]', False),
        ('[1]["bob@example.com"]', True),
        ('[1]["bob@example.com"]', False),
    ]


@pytest.mark.requirement("dlp:scan-linear-time")
@pytest.mark.timeout(60)  # a bound on the wait, not a performance assertion: with backtracking this took hours
def test_a_long_run_ending_in_a_stray_percent_is_scanned_without_backtracking():
    text = "a" * 200_000 + "% then %41 " + "b" * 200_000 + "%"
    assert Scanner().find(text) == []


def test_percent_runs_end_at_whatever_python_calls_whitespace():
    import re

    from portico.dlp.scan import _PY_WHITESPACE

    python_whitespace = {chr(c) for c in range(0x110000) if re.match(r"\s", chr(c))}
    spelled_out = set(re.findall(r".", re.sub(r"(.)-(.)", lambda m: _expand(m[1], m[2]), _PY_WHITESPACE), re.S))
    assert spelled_out == python_whitespace
    for space in python_whitespace:
        value = {"u": f"x{space}bob%40example.com"}
        assert redact(value, scan(value)) == {"u": f"x{space}[REDACTED:email]"}


def _expand(first: str, last: str) -> str:
    return "".join(chr(c) for c in range(ord(first), ord(last) + 1))
