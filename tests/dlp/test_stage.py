"""`DlpStage` in a real chain (ErrorStage → DlpStage → a recording terminal): what is scanned for each method,
what a block, a redaction and a log do to the exchange and the reply, what the audit notes hold, the metric,
the fingerprint key, and failing closed."""

from __future__ import annotations

import copy
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from portico.config import Settings
from portico.dlp import Finding, fingerprint
from portico.dlp.rules import CompiledRule, DlpRules, Where
from portico.dlp.stage import MAX_AUDITED_FINDINGS, DlpStage
from portico.errors import DENIED, INTERNAL_ERROR
from portico.metrics import Metrics
from portico.pipeline import ErrorStage, Pipeline
from portico.types import JSON, Decision, Era, Exchange, Outcome, Principal, Reply, RpcError

pytestmark = pytest.mark.anyio

CARD = "4539 1488 0343 6467"
CARD_DIGITS = CARD.replace(" ", "")
SSN = "536-22-1234"
EMAIL = "dana.lee@example.com"
RULES = [
    {"id": "cards-stay-in-finance", "action": "block", "direction": "request", "detectors": ["card", "ssn"],
     "unless": {"tags": ["finance"]}},
    {"id": "mask-contacts-to-crm", "action": "redact", "direction": "request", "detectors": ["contact"],
     "servers": ["crm"]},
    {"id": "log-ibans", "action": "log", "detectors": ["iban"]},
    {"id": "contractors-see-no-email", "action": "redact", "direction": "response", "detectors": ["email"],
     "groups": ["contractors"]},
    {"id": "no-secrets-in-results", "action": "block", "direction": "response", "detectors": ["secrets"]},
]  # fmt: skip


class Upstream:
    """The terminal: records what it was handed (a deep copy) and answers with `result`."""

    def __init__(self, result: JSON | None = None, encoded: bytes | None = None, error: RpcError | None = None) -> None:
        self.result = result if result is not None else {"content": [{"type": "text", "text": "ok"}]}
        self.encoded = encoded
        self.error = error
        self.seen: list[tuple[JSON, str | None]] = []

    async def __call__(self, exchange: Exchange) -> Reply:
        self.seen.append((copy.deepcopy(exchange.params), exchange.target))
        if self.error is not None:
            return Reply.fail(self.error)
        reply = Reply.ok(copy.deepcopy(self.result))
        reply.encoded = self.encoded
        return reply


def settings(tmp: Path, rules: list[dict[str, Any]] = RULES, **dlp: Any) -> Settings:
    return Settings.model_validate(
        {
            "servers": [
                {"id": "crm", "url": "http://127.0.0.1:9/mcp", "tags": ["third-party"]},
                {"id": "ledger", "url": "http://127.0.0.1:9/mcp", "tags": ["finance"]},
            ],
            "dlp": {"rules": rules, "fingerprint_key_file": str(tmp / "dlp.key"), **dlp},
        }
    )


def exchange(
    method: str, params: JSON, *, server: str = "crm", target: str | None = "echo", groups: tuple[str, ...] = ()
) -> Exchange:
    return Exchange(
        method=method,
        params=params,
        request_id=1,
        principal=Principal("alice", groups=frozenset(groups)),
        era=Era.MODERN,
        protocol_version="2026-07-28",
        server_id=server,
        target=target,
    )


def call(arguments: JSON, **kw: Any) -> Exchange:
    return exchange("tools/call", {"name": "crm__echo", "arguments": arguments}, **kw)


async def run(stage: DlpStage, ex: Exchange, upstream: Upstream) -> Reply:
    with anyio.fail_after(10):
        return await Pipeline([ErrorStage(), stage], upstream)(ex)


def key_of(tmp: Path) -> bytes:
    return bytes.fromhex((tmp / "dlp.key").read_text().strip())


# ------------------------------------------------------------------------------------------ requests


async def test_a_blocked_request_never_reaches_the_terminal_and_the_refusal_names_rule_detector_and_path(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    ex = call({"order": "ORD-2026-000123", "payment": {"card": CARD, "note": "thanks"}})
    reply = await run(DlpStage.from_settings(settings(tmp_path)), ex, upstream)
    assert upstream.seen == []
    assert reply.error is not None
    assert (reply.error.code, reply.outcome) == (DENIED, Outcome.DENIED)
    message = reply.error.message
    assert "'cards-stay-in-finance'" in message
    assert "card in arguments.payment.card" in message
    assert CARD not in message
    assert CARD_DIGITS[4:12] not in message.replace(" ", "")
    decision = ex.notes["decision"]
    assert decision == Decision(False, "dlp.cards-stay-in-finance", message)
    # What the audit stage will read afterwards holds no value either.
    assert CARD not in str(ex.params)
    assert ex.notes["audit_extra"]["dlp_decision"] == {"request": "block"}


async def test_the_same_card_goes_to_a_finance_server_unchanged(tmp_path: Path) -> None:
    upstream = Upstream()
    arguments = {"payment": {"card": CARD}, "ssn": SSN}
    reply = await run(DlpStage.from_settings(settings(tmp_path)), call(arguments, server="ledger"), upstream)
    assert reply.error is None
    assert upstream.seen[0][0]["arguments"] == arguments


async def test_a_sensitive_dict_key_is_masked_in_the_refusal_path(tmp_path: Path) -> None:
    rules = [{"id": "no-ssn", "action": "block", "direction": "request", "detectors": ["ssn"]}]
    reply = await run(
        DlpStage.from_settings(settings(tmp_path, rules)), call({"by_ssn": {SSN: {"risk": "high"}}}), Upstream()
    )
    assert reply.error is not None
    assert 'arguments.by_ssn["[REDACTED:us_ssn]"]' in reply.error.message
    assert SSN not in reply.error.message


async def test_redaction_masks_values_in_a_copy_with_the_same_structure_and_types(tmp_path: Path) -> None:
    upstream = Upstream()
    arguments = {
        "to": [EMAIL, {"cc": "ops@example.org", "n": 2}],
        "body": {"text": f"write to {EMAIL} or call +1 415 555 2671", "urgent": True, "ref": None, "score": 0.5},
    }
    sent = copy.deepcopy(arguments)
    ex = call(arguments)
    reply = await run(DlpStage.from_settings(settings(tmp_path)), ex, upstream)
    assert reply.error is None
    assert arguments == sent  # the caller's value is not edited in place
    assert upstream.seen[0][0]["arguments"] == {
        "to": ["[REDACTED:email]", {"cc": "[REDACTED:email]", "n": 2}],
        "body": {"text": "write to [REDACTED:email] or call [REDACTED:phone]", "urgent": True, "ref": None,
                 "score": 0.5},
    }  # fmt: skip
    assert upstream.seen[0][0]["name"] == "crm__echo"
    assert ex.notes["audit_extra"]["dlp_decision"] == {"request": "redact", "response": "pass"}


async def test_a_logged_value_is_forwarded_unchanged_but_the_audited_exchange_holds_it_masked(tmp_path: Path) -> None:
    upstream = Upstream()
    iban = "DE89 3704 0044 0532 0130 00"
    ex = call({iban: "primary account"}, server="ledger")
    await run(DlpStage.from_settings(settings(tmp_path)), ex, upstream)
    assert upstream.seen[0][0]["arguments"] == {iban: "primary account"}
    assert ex.params["arguments"] == {"[REDACTED:iban]": "primary account"}
    [entry] = ex.notes["audit_extra"]["dlp"]
    assert entry == {
        "detector": "iban",
        "rule": "log-ibans",
        "action": "log",
        "direction": "request",
        "path": 'arguments["[REDACTED:iban]"]',
        "fingerprint": fingerprint(iban, key_of(tmp_path)),
    }


async def test_a_resource_uri_is_scanned_and_the_forwarded_uri_is_the_masked_one(tmp_path: Path) -> None:
    rules = [{"id": "no-email-in-uris", "action": "redact", "direction": "request", "detectors": ["email"]}]
    upstream = Upstream({"contents": []})
    uri = f"crm://contacts/{EMAIL}/notes"
    ex = exchange("resources/read", {"uri": uri}, target=uri)
    await run(DlpStage.from_settings(settings(tmp_path, rules)), ex, upstream)
    assert upstream.seen == [
        ({"uri": "crm://contacts/[REDACTED:email]/notes"}, "crm://contacts/[REDACTED:email]/notes")
    ]
    assert ex.target == "crm://contacts/[REDACTED:email]/notes"  # the audit record's `target`


@pytest.mark.parametrize(
    ("method", "params"),
    [
        pytest.param("prompts/get", {"name": "draft", "arguments": {"card": CARD}}, id="prompt-arguments"),
        pytest.param(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "draft"}, "argument": {"name": "card", "value": CARD}},
            id="completion-argument",
        ),
        pytest.param(
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "draft"},
                "argument": {"name": "x", "value": "a"},
                "context": {"arguments": {"card": CARD}},
            },
            id="completion-context",
        ),
        pytest.param(
            "tools/call",
            {"name": "pay", "arguments": {}, "inputResponses": {"ask": {"action": "accept", "content": {"n": CARD}}}},
            id="elicitation-answer",
        ),
    ],
)
async def test_every_payload_that_goes_upstream_is_scanned(tmp_path: Path, method: str, params: JSON) -> None:
    upstream = Upstream()
    reply = await run(DlpStage.from_settings(settings(tmp_path)), exchange(method, params, target="draft"), upstream)
    assert reply.error is not None
    assert reply.error.code == DENIED
    assert upstream.seen == []


async def test_methods_that_carry_no_payload_pass_untouched(tmp_path: Path) -> None:
    upstream = Upstream({"tools": [{"name": "x", "description": CARD}]})
    ex = exchange("tools/list", {}, target=None)
    reply = await run(DlpStage.from_settings(settings(tmp_path)), ex, upstream)
    assert reply.result == {"tools": [{"name": "x", "description": CARD}]}
    assert "audit_extra" not in ex.notes


# ------------------------------------------------------------------------------------------ results


async def test_a_contractors_result_is_masked_and_its_cached_encoding_dropped(tmp_path: Path) -> None:
    result = {"content": [{"type": "text", "text": f"owner: {EMAIL}"}], "structuredContent": {"owner": EMAIL}}
    upstream = Upstream(result, encoded=b"stale")
    stage = DlpStage.from_settings(settings(tmp_path))
    contractor = await run(stage, call({"q": "owner"}, server="ledger", groups=("contractors",)), upstream)
    assert contractor.result is not None
    assert contractor.result["content"][0]["text"] == "owner: [REDACTED:email]"
    assert contractor.result["structuredContent"] == {"owner": "[REDACTED:email]"}
    assert contractor.encoded is None
    employee = await run(stage, call({"q": "owner"}, server="ledger", groups=("eng",)), upstream)
    assert employee.result == result
    assert employee.encoded == b"stale"


async def test_a_result_a_block_rule_catches_is_withheld_after_the_upstream_ran(tmp_path: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
    upstream = Upstream({"content": [{"type": "text", "text": "ok"}, {"type": "text", "text": f"token={token}"}]})
    ex = call({"q": "token"}, server="ledger")
    reply = await run(DlpStage.from_settings(settings(tmp_path)), ex, upstream)
    assert len(upstream.seen) == 1
    assert reply.result is None
    assert reply.error is not None
    assert reply.error.code == DENIED
    assert "'no-secrets-in-results' found github_token in result.content[1].text" in reply.error.message
    assert token not in reply.error.message
    assert ex.notes["audit_extra"]["dlp_decision"] == {"request": "pass", "response": "block"}


async def test_an_upstream_error_is_checked_like_a_result(tmp_path: Path) -> None:
    stage = DlpStage.from_settings(settings(tmp_path))
    echoing = Upstream(error=RpcError(-32602, f"no account for {EMAIL}", {"email": EMAIL, "code": 7}))
    masked = await run(stage, call({"q": "x"}, server="ledger", groups=("contractors",)), echoing)
    assert masked.error == RpcError(-32602, "no account for [REDACTED:email]", {"email": "[REDACTED:email]", "code": 7})
    token = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
    leaking = Upstream(error=RpcError(-32603, f"bad credentials: {token}"))
    blocked = await run(stage, call({"q": "x"}, server="ledger"), leaking)
    assert blocked.error is not None
    assert blocked.error.code == DENIED
    assert "found github_token in error.message" in blocked.error.message
    assert token not in blocked.error.message


# ------------------------------------------------------------------------------------------ audit and metrics


async def test_findings_are_counted_and_listed_up_to_the_cap(tmp_path: Path) -> None:
    metrics = Metrics()
    rules = [{"id": "log-emails", "action": "log", "direction": "request", "detectors": ["email"]}]
    emails = [f"person{i}@example.com" for i in range(MAX_AUDITED_FINDINGS + 20)]
    ex = call({"to": emails})
    await run(DlpStage.from_settings(settings(tmp_path, rules), metrics), ex, Upstream())
    listed = ex.notes["audit_extra"]["dlp"]
    assert len(listed) == MAX_AUDITED_FINDINGS
    assert ex.notes["audit_extra"]["dlp_unlisted"] == 20
    assert listed[3]["path"] == "arguments.to[3]"
    assert listed[3]["fingerprint"] == fingerprint("person3@example.com", key_of(tmp_path))
    rendered = metrics.render().decode()
    assert f'portico_dlp_findings_total{{action="log",detector="email",direction="request"}} {len(emails)}.0' in (
        rendered
    )


async def test_the_fingerprint_key_is_created_0600_once_and_only_when_rules_exist(tmp_path: Path) -> None:
    DlpStage.from_settings(settings(tmp_path, []))
    assert not (tmp_path / "dlp.key").exists()
    DlpStage.from_settings(settings(tmp_path))
    first = (tmp_path / "dlp.key").read_text()
    assert stat.S_IMODE((tmp_path / "dlp.key").stat().st_mode) == 0o600
    assert len(bytes.fromhex(first.strip())) == 32
    DlpStage.from_settings(settings(tmp_path))
    assert (tmp_path / "dlp.key").read_text() == first


async def test_with_dlp_disabled_nothing_is_scanned(tmp_path: Path) -> None:
    upstream = Upstream()
    stage = DlpStage.from_settings(settings(tmp_path, enabled=False))
    reply = await run(stage, call({"card": CARD}), upstream)
    assert reply.error is None
    assert upstream.seen[0][0]["arguments"] == {"card": CARD}


# ------------------------------------------------------------------------------------------ failing closed


class BrokenDetector:
    """A detector (the engine's public protocol) that fails on the text it is given."""

    name = "broken"
    hints: tuple[str, ...] = ()
    needs_digits = False

    def find(self, text: str) -> list[Finding]:
        raise ValueError("detector failed")


def broken_stage(direction: Any) -> DlpStage:
    rule = CompiledRule("all-checked", "block", frozenset({direction}), ("broken",), Where())
    return DlpStage(DlpRules([rule], {"broken": BrokenDetector()}, {}), b"k" * 32)


async def test_a_request_that_cannot_be_scanned_is_refused_and_never_forwarded() -> None:
    upstream = Upstream()
    ex = call({"card": CARD})
    reply = await run(broken_stage("request"), ex, upstream)
    assert upstream.seen == []
    assert reply.error is not None
    assert reply.error.code == INTERNAL_ERROR
    assert CARD not in reply.error.message
    assert ex.notes["audit_extra"]["dlp_decision"] == {"request": "failed"}


async def test_a_result_that_cannot_be_scanned_is_withheld() -> None:
    upstream = Upstream({"content": [{"type": "text", "text": CARD}]})
    ex = call({"q": "x"})
    reply = await run(broken_stage("response"), ex, upstream)
    assert len(upstream.seen) == 1
    assert reply.result is None
    assert reply.error is not None
    assert ex.notes["audit_extra"]["dlp_decision"] == {"response": "failed"}


async def test_an_unrouted_call_is_refused_rather_than_forwarded_unjudged(tmp_path: Path) -> None:
    upstream = Upstream()
    reply = await run(DlpStage.from_settings(settings(tmp_path)), call({"card": CARD}, target=None), upstream)
    assert upstream.seen == []
    assert reply.error is not None
    assert reply.error.code == DENIED
