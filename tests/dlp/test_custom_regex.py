"""Admin regexes run on RE2: linear time on hostile text, and patterns RE2 cannot run are refused at config time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portico.dlp import Finding, Scanner, keyword_detector, regex_detector
from portico.dlp.detectors.linear import LinearPattern
from portico.errors import ConfigError

# Each of these backtracks catastrophically in Python's `re` on a long run of "a" that does not end the way the
# pattern wants (minutes for 30 characters, never for 100,000).
PATHOLOGICAL = [r"(a+)+$", r"(a|aa)+$", r"(a*)*b", r"(?:a|a)*c", r"^(a+)+x"]
HOSTILE = "a" * 100_000 + "!"


@pytest.mark.requirement("dlp:admin-regex-linear-time")
@pytest.mark.timeout(60)  # a bound on the wait, not a performance assertion: backtracking would take years
@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_a_pathological_admin_regex_on_hostile_text_completes(pattern):
    scanner = Scanner([regex_detector("operator", pattern)])
    assert scanner.scan({"text": HOSTILE}) == []


def test_a_pathological_admin_regex_still_finds_what_it_describes():
    scanner = Scanner([regex_detector("operator", r"(a+)+$")])
    assert scanner.find("xx aaaa") == [Finding("operator", 3, 7)]


@pytest.mark.parametrize(
    ("why", "pattern"),
    [
        ("backreference", r"(\w+) \1"),
        ("named backreference", r"(?P<word>\w+) (?P=word)"),
        ("lookahead", r"PRJ-(?=\d)"),
        ("negative lookbehind", r"(?<!x)PRJ-\d+"),
        ("possessive quantifier", r"PRJ-\d++"),
        ("end of text as Python spells it", r"PRJ-\d+\Z"),
    ],
)
def test_a_pattern_the_linear_engine_cannot_run_is_refused_naming_the_detector(why, pattern):
    with pytest.raises(ConfigError) as refused:
        regex_detector("tickets", pattern)
    assert "'tickets'" in refused.value.public
    assert "RE2" in refused.value.public
    assert pattern not in refused.value.public  # the pattern goes to the private detail only
    assert repr(pattern) in (refused.value.detail or "")


@pytest.mark.parametrize("pattern", [r"(a{1000}){1000}", r"((a{100}){100}){100}"])
def test_a_pattern_too_large_for_the_linear_engine_is_refused(pattern):
    with pytest.raises(ConfigError) as refused:
        regex_detector("huge", pattern)
    assert "'huge'" in refused.value.public


def test_an_admin_regex_reports_offsets_in_characters_of_non_ascii_text():
    text = "café ✓ — PRJ-1234 and PRJ-5678"
    found = Scanner([regex_detector("ticket", r"PRJ-\d{4}")]).find(text)
    assert [text[f.start : f.end] for f in found] == ["PRJ-1234", "PRJ-5678"]


def test_an_admin_regex_copes_with_lone_surrogates():
    text = "\ud800 PRJ-1234 \udfff"
    found = Scanner([regex_detector("ticket", r"PRJ-\d{4}")]).find(text)
    assert [text[f.start : f.end] for f in found] == ["PRJ-1234"]


def test_an_admin_regex_can_ignore_case():
    found = Scanner([regex_detector("ticket", r"prj-\d{4}", ignore_case=True)]).find("see PRJ-1234")
    assert found == [Finding("ticket", 4, 12)]


def test_keywords_are_found_in_any_case_python_folds_among_many_strings():
    scanner = Scanner([keyword_detector("project", ["pipeline", "secret plan", "kelvin"])])
    document = ["nothing here"] * 50 + ["the P\u0130PEL\u0130NE ran", "a \u017fecret plan", "\u212aELVIN scale"]
    found = [(f.path, f.start, f.end) for f in scanner.scan(document)]
    assert found == [("[50]", 4, 12), ("[51]", 2, 13), ("[52]", 0, 6)]


def test_an_anchored_admin_regex_still_judges_each_string_whole_in_a_document():
    scanner = Scanner([regex_detector("employee", r"^EMP-\d{6}$")])
    document = {"a": "x", "ids": ["EMP-123456", "not EMP-123456", "EMP-654321"]}
    assert [f.path for f in scanner.scan(document)] == ["ids[0]", "ids[2]"]


def test_an_admin_regex_is_found_at_its_exact_path_among_many_short_strings():
    scanner = Scanner([regex_detector("ticket", r"PRJ-\d{4}", ignore_case=True)])
    document = {"rows": [{"id": i, "note": f"row {i}"} for i in range(200)]}
    document["rows"][137]["note"] = "see prj-1234"
    assert [(f.path, f.start, f.end) for f in scanner.scan(document)] == [("rows[137].note", 4, 12)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="iIkKsSaZ -.", min_size=1, max_size=6).filter(str.strip), min_size=1, max_size=3),
    st.text(alphabet="iIkKsSaZ -.\u0130\u0131\u212a\u017f\u00e9x", max_size=30),
)
def test_a_keyword_prefilter_matches_wherever_its_detector_finds_something(words, text):
    detector = keyword_detector("kw", words)
    if detector.find(text):
        assert detector.prefilter is not None
        assert LinearPattern(detector.prefilter).search(f"x\x00{text}\x00y") is not None
