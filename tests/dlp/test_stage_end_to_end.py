"""DLP through a real Portico over HTTP, with the official MCP SDK client, signed-in callers with groups, and real
upstreams: two echo servers (`ledger`, tagged finance; `crm`, tagged third-party) that record every message
they receive, and the `everything` server for prompts and resources.

What is proved on the upstream side: a blocked value never arrives (not one byte of it), a redacted one arrives
masked with its JSON intact, and look-alikes arrive untouched. On the client side: results are masked or
withheld per group and rule. In the audit log: every finding, with its fingerprint, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from portico.audit import verify as reading
from portico.audit.model import AuditRecord
from portico.config import Settings
from portico.dlp import fingerprint
from portico.errors import DENIED
from tests.support.portico import Running, make_settings, serve
from tests.upstreams.launch import launch_sync, stdio_argv

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
CARD = "4539 1488 0343 6467"  # a valid Luhn checksum, Visa IIN
SSN = "536-22-1234"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
EMAIL = "dana.lee@example.com"
PHONE = "+1 415 555 2671"
LOOK_ALIKES = {
    "order": "ORD-2026-000123",
    "request_id": "123e4567-e89b-12d3-a456-426614174000",
    "bad_checksum_card": "4539 1488 0343 6468",
    "never_issued_ssn": "000-12-3456",
    "commit": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "parcel": "1Z999AA10123456784",
    "amount": "1234567.89",
    "at": "2026-03-04T10:30:00Z",
    "not_an_email": "user at example dot com",
}
RULES = [
    {"id": "cards-stay-in-finance", "action": "block", "direction": "request", "detectors": ["card", "ssn"],
     "unless": {"tags": ["finance"]}},
    {"id": "no-secrets-to-third-parties", "action": "block", "direction": "request", "detectors": ["secrets"],
     "tags": ["third-party"]},
    {"id": "contractors-see-no-email", "action": "redact", "direction": "response", "detectors": ["email"],
     "groups": ["contractors"]},
    {"id": "mask-contacts-to-crm", "action": "redact", "direction": "request", "detectors": ["contact"],
     "servers": ["crm"]},
    {"id": "no-secrets-in-results", "action": "block", "direction": "response", "detectors": ["secrets"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, str]]:
    """Two echo upstreams over Streamable HTTP, for the whole module (each test clears their logs)."""
    with launch_sync("echo") as ledger, launch_sync("echo") as crm:
        assert isinstance(ledger, str)
        assert isinstance(crm, str)
        yield {"ledger": ledger, "crm": crm}


def gateway_settings(tmp: Path, echoes: dict[str, str], *extra_servers: dict[str, Any]) -> Settings:
    servers = [
        {"id": "ledger", "url": echoes["ledger"], "tags": ["finance"]},
        {"id": "crm", "url": echoes["crm"], "tags": ["third-party"]},
        *extra_servers,
    ]
    return make_settings(
        tmp,
        servers,
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp / "signing-keys.json")}},
        vault={"key_file": str(tmp / "vault.key")},
        dlp={"rules": RULES, "fingerprint_key_file": str(tmp / "dlp-fingerprint.key")},
        # Only DLP is under test: prompt-injection scoring would also judge (and may flag) these made-up texts.
        inspection={"enabled": False},
    )


@asynccontextmanager
async def gateway(tmp: Path, echoes: dict[str, str], *extra_servers: dict[str, Any]) -> AsyncIterator[Running]:
    async with httpx2.AsyncClient(timeout=10) as http:
        for url in echoes.values():
            (await http.delete(received_url(url))).raise_for_status()
    async with serve(gateway_settings(tmp, echoes, *extra_servers)) as running:
        yield running


@asynccontextmanager
async def signed_in(running: Running, subject: str, groups: list[str], mode: str) -> AsyncIterator[Client]:
    """The SDK client with an access token for `subject` in `groups` (as the authorization server issues it)."""
    assert running.portico.token_issuer is not None
    token = running.portico.token_issuer.issue(subject, running.url, scopes=["mcp"], client_id="c", groups=groups)
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(running.url, http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client


def received_url(mcp_url: str) -> str:
    return mcp_url.rsplit("/", 1)[0] + "/received"


async def received(echoes: dict[str, str], server: str) -> list[dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=10) as http:
        reply = await http.get(received_url(echoes[server]))
    reply.raise_for_status()
    messages: list[dict[str, Any]] = reply.json()
    return messages


def tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["params"]["arguments"] for m in messages if m["method"] == "tools/call"]


async def refused(client: Client, name: str, arguments: dict[str, Any]) -> MCPError:
    with anyio.fail_after(30), pytest.raises(MCPError) as caught:
        await client.call_tool(name, arguments)
    return caught.value


async def audit_records(running: Running) -> list[AuditRecord]:
    portico = running.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    return [record async for batch in reading.tail(portico.store, 1000) for record in batch]


def stored_bytes(directory: Path) -> list[bytes]:
    """Every file Portico wrote under `directory` (the database, its journal, the audit spool), keys aside."""
    return [p.read_bytes() for p in directory.rglob("*") if p.is_file() and not p.name.endswith((".key", ".json"))]


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def text_of(result: Any) -> str:
    """The text blocks of a tool result (other stages, such as content inspection, may add blocks of their own)."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


# ------------------------------------------------------------------------------------------ requests


@pytest.mark.requirement("dlp:blocked-value-never-reaches-upstream")
@pytest.mark.parametrize("mode", MODES)
async def test_a_blocked_card_never_reaches_the_upstream(tmp_path: Path, echoes: dict[str, str], mode: str) -> None:
    async with gateway(tmp_path, echoes) as running, signed_in(running, "erin", ["eng"], mode) as client:
        error = await refused(client, "crm__echo", {"text": f"please charge {CARD} today"})
        reached = await received(echoes, "crm")
    assert error.code == DENIED
    assert "'cards-stay-in-finance' found card in arguments.text" in error.message
    assert digits(CARD)[4:12] not in digits(error.message)
    assert tool_calls(reached) == []
    everything_received = json.dumps(reached)
    assert CARD not in everything_received
    for piece in (digits(CARD), digits(CARD)[:8], digits(CARD)[8:], "0343"):
        assert piece not in digits(everything_received.replace(" ", ""))


@pytest.mark.requirement("dlp:destination-tags")
async def test_cards_and_ssns_reach_finance_servers_and_no_other(tmp_path: Path, echoes: dict[str, str]) -> None:
    payment = {"text": "payroll run", "employee": {"ssn": SSN, "cards": [CARD]}}
    async with gateway(tmp_path, echoes) as running, signed_in(running, "erin", ["eng"], "2026-07-28") as client:
        answered = await client.call_tool("ledger__echo", payment)
        error = await refused(client, "crm__echo", payment)
        at_ledger = await received(echoes, "ledger")
        at_crm = await received(echoes, "crm")
    assert not answered.is_error
    assert tool_calls(at_ledger) == [payment]
    assert error.code == DENIED
    assert "(and 1 more)" in error.message  # the SSN and the card
    assert tool_calls(at_crm) == []
    assert SSN not in json.dumps(at_crm)


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"text": "deploy", "env": {"access_key_id": AWS_KEY_ID}}, id="aws-access-key-id"),
        pytest.param({"text": "deploy", "env": {"aws_secret_access_key": AWS_SECRET}}, id="aws-secret-key"),
        pytest.param({"text": f"clone with {GITHUB_TOKEN}"}, id="github-token"),
    ],
)
async def test_secrets_never_reach_a_third_party_server(
    tmp_path: Path, echoes: dict[str, str], arguments: dict[str, Any]
) -> None:
    async with gateway(tmp_path, echoes) as running, signed_in(running, "erin", ["eng"], "legacy") as client:
        error = await refused(client, "crm__echo", arguments)
        at_crm = json.dumps(await received(echoes, "crm"))
    assert "'no-secrets-to-third-parties'" in error.message
    assert "tools/call" not in at_crm
    for secret in (AWS_KEY_ID, AWS_SECRET, AWS_SECRET[:20], GITHUB_TOKEN, GITHUB_TOKEN[4:]):
        assert secret not in at_crm


@pytest.mark.requirement("dlp:redaction-keeps-structure")
@pytest.mark.parametrize("mode", MODES)
async def test_a_redacted_payload_arrives_masked_with_its_json_structure_intact(
    tmp_path: Path, echoes: dict[str, str], mode: str
) -> None:
    arguments = {
        "text": f"ask {EMAIL} to call back",
        "customer": {
            "contacts": [{"email": EMAIL, "phone": PHONE, "primary": True}, {"email": "ops@example.org", "rank": 2}],
            "tags": ["vip", "renewal"],
            "notes": None,
            "balance": 1250.5,
        },
        "look_alikes": LOOK_ALIKES,
    }
    async with gateway(tmp_path, echoes) as running, signed_in(running, "erin", ["eng"], mode) as client:
        answered = await client.call_tool("crm__echo", arguments)
        [arrived] = tool_calls(await received(echoes, "crm"))
    assert arrived == {
        "text": "ask [REDACTED:email] to call back",
        "customer": {
            "contacts": [
                {"email": "[REDACTED:email]", "phone": "[REDACTED:phone]", "primary": True},
                {"email": "[REDACTED:email]", "rank": 2},
            ],
            "tags": ["vip", "renewal"],
            "notes": None,
            "balance": 1250.5,
        },
        "look_alikes": LOOK_ALIKES,
    }
    assert "ask [REDACTED:email] to call back" in text_of(answered)  # what the upstream saw is what it echoed


async def test_look_alikes_pass_untouched_and_leave_no_findings(tmp_path: Path, echoes: dict[str, str]) -> None:
    arguments = {"text": " ".join(LOOK_ALIKES.values()), "fields": LOOK_ALIKES}
    async with gateway(tmp_path, echoes) as running:
        async with signed_in(running, "erin", ["contractors"], "2026-07-28") as client:
            answered = await client.call_tool("crm__echo", arguments)
        records = await audit_records(running)
        arrived = tool_calls(await received(echoes, "crm"))
    assert arrived == [arguments]
    assert arguments["text"] in text_of(answered)
    [call] = [r for r in records if r.method == "tools/call"]
    assert call.extra == {"dlp_decision": {"request": "pass", "response": "pass"}}


# ------------------------------------------------------------------------------------------ results


@pytest.mark.requirement("dlp:group-rules")
@pytest.mark.parametrize("mode", MODES)
async def test_contractors_get_email_addresses_masked_in_results_and_others_do_not(
    tmp_path: Path, echoes: dict[str, str], mode: str
) -> None:
    question = {"text": f"account owner: {EMAIL}"}
    async with gateway(tmp_path, echoes) as running:
        async with signed_in(running, "carol", ["contractors", "sales"], mode) as client:
            contractor = await client.call_tool("ledger__echo", question)
        async with signed_in(running, "erin", ["eng", "sales"], mode) as client:
            employee = await client.call_tool("ledger__echo", question)
        at_ledger = tool_calls(await received(echoes, "ledger"))
    assert at_ledger == [question, question]  # a response rule changes nothing on the way in
    assert "account owner: [REDACTED:email]" in text_of(contractor)
    assert EMAIL not in text_of(contractor) + str(contractor.structured_content)
    assert f"account owner: {EMAIL}" in text_of(employee)


@pytest.mark.requirement("dlp:blocked-result-never-reaches-client")
async def test_a_result_carrying_a_secret_is_withheld_from_the_client(tmp_path: Path, echoes: dict[str, str]) -> None:
    async with gateway(tmp_path, echoes) as running, signed_in(running, "erin", ["eng"], "legacy") as client:
        error = await refused(client, "ledger__echo", {"text": f"token {GITHUB_TOKEN}"})
        at_ledger = tool_calls(await received(echoes, "ledger"))
    assert at_ledger == [{"text": f"token {GITHUB_TOKEN}"}]  # finance may receive it; the answer stays here
    assert error.code == DENIED
    assert "'no-secrets-in-results' found github_token in result.content[0].text" in error.message
    assert GITHUB_TOKEN not in error.message


async def test_prompt_arguments_resource_uris_and_their_results_are_checked(
    tmp_path: Path, echoes: dict[str, str]
) -> None:
    records = {"id": "records", "command": stdio_argv("everything"), "tags": ["third-party"]}
    async with (
        gateway(tmp_path, echoes, records) as running,
        signed_in(running, "carol", ["contractors"], "legacy") as client,
    ):
        with pytest.raises(MCPError) as prompt_refused:
            await client.get_prompt("records__test_prompt_with_arguments", {"arg1": CARD, "arg2": "x"})
        with pytest.raises(MCPError) as read_refused:
            await client.read_resource(f"test://template/{SSN}/data")
        prompt = await client.get_prompt("records__test_prompt_with_arguments", {"arg1": EMAIL, "arg2": "x"})
        resource = await client.read_resource(f"test://template/{EMAIL}/data")
    assert prompt_refused.value.code == DENIED
    assert "found card in arguments.arg1" in prompt_refused.value.message
    assert read_refused.value.code == DENIED
    assert "found us_ssn in uri" in read_refused.value.message
    shown = prompt.messages[0].content
    assert getattr(shown, "text", None) == "Prompt with arguments: arg1='[REDACTED:email]', arg2='x'"
    [contents] = resource.contents
    assert EMAIL not in contents.model_dump_json()
    assert json.loads(getattr(contents, "text", "{}"))["id"] == "[REDACTED:email]"


# ------------------------------------------------------------------------------------------ the audit log


@pytest.mark.requirement("dlp:findings-audited-without-values")
async def test_each_finding_is_in_the_audit_log_with_its_fingerprint_and_never_its_value(
    tmp_path: Path, echoes: dict[str, str]
) -> None:
    async with gateway(tmp_path, echoes) as running:
        async with signed_in(running, "erin", ["eng"], "2026-07-28") as client:
            await refused(client, "crm__echo", {"text": "pay", "card": CARD, "ssn": SSN})
            await refused(client, "crm__echo", {"text": "x", "env": {"aws_secret_access_key": AWS_SECRET}})
            await client.call_tool("crm__echo", {"text": f"mail {EMAIL}"})
            await refused(client, "ledger__echo", {"text": f"{AWS_KEY_ID} {GITHUB_TOKEN}"})
        async with httpx2.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{running.base}/metrics")).text
        records = [r for r in await audit_records(running) if r.method == "tools/call"]
    key = bytes.fromhex((tmp_path / "dlp-fingerprint.key").read_text().strip())
    findings = [(r.target, r.decision, r.rule, entry) for r in records for entry in (r.extra or {}).get("dlp", [])]
    expected = [
        ("card", "cards-stay-in-finance", "block", "request", "arguments.card", CARD),
        ("us_ssn", "cards-stay-in-finance", "block", "request", "arguments.ssn", SSN),
        ("aws_secret_access_key", "no-secrets-to-third-parties", "block", "request",
         "arguments.env.aws_secret_access_key", AWS_SECRET),
        ("email", "mask-contacts-to-crm", "redact", "request", "arguments.text", EMAIL),
        ("aws_access_key_id", "no-secrets-in-results", "block", "response", "result.content[0].text", AWS_KEY_ID),
        ("github_token", "no-secrets-in-results", "block", "response", "result.content[0].text", GITHUB_TOKEN),
        ("aws_access_key_id", "no-secrets-in-results", "block", "response", "result.structuredContent.result",
         AWS_KEY_ID),
        ("github_token", "no-secrets-in-results", "block", "response", "result.structuredContent.result",
         GITHUB_TOKEN),
    ]  # fmt: skip
    assert [
        (e["detector"], e["rule"], e["action"], e["direction"], e["path"], e["fingerprint"]) for *_, e in findings
    ] == [(d, rule, a, way, path, fingerprint(value, key)) for d, rule, a, way, path, value in expected]
    blocked = [(r.decision, r.rule, r.outcome, r.error_code) for r in records if r.outcome == "denied"]
    assert blocked == [
        ("deny", "dlp.cards-stay-in-finance", "denied", DENIED),
        ("deny", "dlp.no-secrets-to-third-parties", "denied", DENIED),
        ("deny", "dlp.no-secrets-in-results", "denied", DENIED),
    ]
    values = [CARD, SSN, AWS_SECRET, EMAIL, AWS_KEY_ID, GITHUB_TOKEN]
    for record in records:
        document = json.dumps(record.to_json())
        for value in [*values, digits(CARD), digits(SSN)]:
            assert value not in document
    stored = stored_bytes(tmp_path)
    assert stored, "the audit database and spool are under the test's directory"
    for value in values:
        assert not any(value.encode() in blob for blob in stored)
    assert 'portico_dlp_findings_total{action="block",detector="card",direction="request"} 1.0' in metrics
    assert 'portico_dlp_findings_total{action="redact",detector="email",direction="request"} 1.0' in metrics
