"""The one-pass prefilter never hides a finding.

The scanner calls a detector only where its RE2 gate occurs, and clears batches of short strings joined by NULs
in one pass. Both are sound only if every gate matches wherever its detector finds something, also when the
text sits between NULs. These tests hold each built-in gate to that, on the detector tables and on generated
text made of secrets, look-alikes and the characters the gates' boundaries are about.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portico.dlp import Scanner, default_detectors
from portico.dlp.detectors.linear import LinearPattern
from portico.dlp.scan import _B64_GATE, _PCT_GATE, _b64_runs, _b64_text
from tests.dlp.test_detectors import NEGATIVES, POSITIVES

DETECTORS = default_detectors()
GATES = {d.name: LinearPattern(d.prefilter) for d in DETECTORS if isinstance(getattr(d, "prefilter", None), str)}
B64_GATE = LinearPattern(_B64_GATE)
PCT_GATE = LinearPattern(_PCT_GATE)

PIECES = [v for _, _, v in POSITIVES] + [t for _, t, _ in POSITIVES] + [t for _, t in NEGATIVES]
PIECES += [
    "1.2.3.4 5.6.7.8",
    "tin 36574261809",
    "+44 20 7946 0958",
    "415.555.2671",
    "4111-1111-1111-1111",
    "GB82 WEST 1234 5698 7654 32",
    "social security no. 536221234",
    "secret_access_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
    "aws_secret_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "SharedAccessKey=" + "Ab1+" * 10 + "Abc=",
    "2 95 10 2A 126 111 93",
    "burgerservicenummer 111.222.333",
    "2026-11-24T03:46:10Z",
    "#12345678",
]
# Characters that decide the gates' boundaries and classes, and some that behave differently in RE2 and `re`.
ALPHABET = "0123456789 .-,/+_:()@=%#\n\t\x0b\x00aAzZkKsSiITxXeE" + "\u00e9\u0130\u0131\u212a\u017f\u0663\uff11\u2713"


def text_strategy() -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(PIECES), st.text(alphabet=ALPHABET, max_size=12))
    return st.lists(piece, max_size=8).map("".join)


def assert_gates_hold(text: str) -> None:
    for detector in DETECTORS:
        gate = GATES.get(detector.name)
        if gate is None or not detector.find(text):
            continue
        assert gate.search(text) is not None, (detector.name, text)
        assert gate.search(f"x\x00{text}\x00y") is not None, (detector.name, text)


@pytest.mark.requirement("dlp:prefilter-never-hides-a-finding")
@pytest.mark.parametrize("text", PIECES)
def test_every_gate_matches_where_its_detector_finds_something_in_the_tables(text):
    assert_gates_hold(text)


@pytest.mark.requirement("dlp:prefilter-never-hides-a-finding")
@settings(max_examples=600, deadline=None)
@given(text_strategy())
def test_every_gate_matches_where_its_detector_finds_something_in_generated_text(text):
    assert_gates_hold(text)


@settings(max_examples=200, deadline=None)
@given(text_strategy(), st.sampled_from(PIECES))
def test_the_base64_and_percent_gates_match_wherever_something_would_be_decoded(text, secret):
    for blob in (base64.b64encode(secret.encode()).decode(), base64.urlsafe_b64encode(secret.encode()).decode()):
        assert_decoding_gates_hold(f"{text} {blob} {text}")
    assert_decoding_gates_hold(f"{text} https://x.test/?q={quote(secret, safe='')} {text}")
    assert_decoding_gates_hold(text)


def assert_decoding_gates_hold(text: str) -> None:
    if any(_b64_text(run) is not None for _, _, run in _b64_runs(text)):
        assert B64_GATE.search(text) is not None
        assert B64_GATE.search(f"x\x00{text}\x00y") is not None
    if unquote(text) != text:
        assert PCT_GATE.search(f"x\x00{text}\x00y") is not None


@settings(max_examples=150, deadline=None)
@given(st.lists(text_strategy(), min_size=2, max_size=30))
def test_short_strings_scanned_together_give_the_findings_each_gives_alone(strings):
    scanner = Scanner()
    alone = [(f"[{i}]", f.detector, f.start, f.end) for i, s in enumerate(strings) for f in scanner.find(s)]
    together = [(f.path, f.detector, f.start, f.end) for f in scanner.scan(strings)]
    assert together == alone
