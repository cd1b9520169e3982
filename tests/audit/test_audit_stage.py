"""AuditStage in front of small real terminals: what an exchange leaves in the log."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portico.audit import AuditLog, AuditStage
from portico.errors import DENIED
from portico.store import Store
from portico.types import Decision, Exchange, Outcome, Principal, Reply, RpcError
from tests.audit.support import flushed, make_exchange, records

pytestmark = pytest.mark.anyio

SECRET = "hunter2-Zq8-do-not-store"


async def echo(exchange: Exchange) -> Reply:
    return Reply.ok({"content": [{"type": "text", "text": "done"}]})


async def test_an_allowed_tool_call_is_recorded_with_its_decision_and_sizes(audit_log: AuditLog, store: Store) -> None:
    exchange = make_exchange(arguments={"query": "x", "limit": 3}, request_bytes=120, scope="gh", session_id="s1")
    exchange.server_id, exchange.target = "gh", "search"
    exchange.notes["decision"] = Decision(allowed=True, rule="staff-may-search", reason="member of staff")
    reply = await AuditStage(audit_log)(exchange, echo)
    await flushed(audit_log)
    [rec] = await records(store)
    assert reply.encoded is not None  # sized once here, reused by the transport
    assert (rec.id, rec.method, rec.server_id, rec.target, rec.scope) == (exchange.id, "tools/call", "gh",
                                                                         "search", "gh")  # fmt: skip
    assert (rec.decision, rec.rule, rec.reason) == ("allow", "staff-may-search", "member of staff")
    assert (rec.outcome, rec.error_code) == ("ok", None)
    assert (rec.request_bytes, rec.response_bytes) == (120, len(reply.encoded))
    assert (rec.subject, rec.client_id, rec.ip, rec.session_id) == ("alice@example.com", "cursor", "10.0.0.7", "s1")
    assert (rec.protocol_version, rec.era) == ("2025-11-25", "legacy")
    assert rec.arg_keys == ("limit", "query")
    assert rec.args_digest == audit_log.digest_args({"limit": 3, "query": "x"})
    assert rec.latency_us >= 0


@pytest.mark.requirement("audit:no-raw-arguments")
async def test_argument_values_are_never_stored(audit_log: AuditLog, store: Store) -> None:
    for method in ("tools/call", "prompts/get"):
        await AuditStage(audit_log)(make_exchange(method, arguments={"password": SECRET, "nested": [SECRET]}), echo)
    await flushed(audit_log)
    for rec in await records(store):
        assert SECRET not in repr(rec)
        assert rec.arg_keys == ("nested", "password")
        assert rec.args_digest is not None
    if store.settings.sqlite_path is not None:  # the whole database, byte for byte, journal included
        files = store.settings.sqlite_path.parent.glob("portico.db*")
        assert all(SECRET.encode() not in f.read_bytes() for f in files)
    else:
        async with store.engine.connect() as conn:
            dump = (await conn.execute(text("SELECT audit_records::text FROM audit_records"))).scalars().all()
        assert len(dump) == 2
        assert all(SECRET not in row for row in dump)


async def test_a_denied_call_is_recorded_with_the_reason_and_error_code(audit_log: AuditLog, store: Store) -> None:
    async def deny(exchange: Exchange) -> Reply:
        exchange.notes["decision"] = Decision(allowed=False, rule="no-prod-writes", reason="prod is read-only")
        return Reply.fail(RpcError(DENIED, "Denied by policy"), Outcome.DENIED)

    reply = await AuditStage(audit_log)(make_exchange(arguments={"q": 1}), deny)
    await flushed(audit_log)
    [rec] = await records(store)
    assert reply.outcome is Outcome.DENIED
    assert (rec.decision, rec.rule, rec.reason, rec.outcome, rec.error_code) == (
        "deny", "no-prod-writes", "prod is read-only", "denied", DENIED)  # fmt: skip
    assert rec.response_bytes == 0


async def test_a_tool_failure_is_recorded_as_a_tool_error(audit_log: AuditLog, store: Store) -> None:
    async def failing_tool(exchange: Exchange) -> Reply:
        return Reply.ok({"content": [{"type": "text", "text": "boom"}], "isError": True})

    await AuditStage(audit_log)(make_exchange(arguments={}), failing_tool)
    await flushed(audit_log)
    [rec] = await records(store)
    assert (rec.outcome, rec.error_code, rec.decision) == ("tool_error", None, None)


async def test_an_exception_from_the_chain_is_recorded_and_re_raised(audit_log: AuditLog, store: Store) -> None:
    async def broken(exchange: Exchange) -> Reply:
        raise LookupError("a bug behind the errors stage")

    exchange = make_exchange("resources/read", principal=Principal(subject="svc", authenticated_by="api_key"))
    exchange.notes["audit_extra"] = {"dlp": "clean"}
    with pytest.raises(LookupError):
        await AuditStage(audit_log)(exchange, broken)
    await flushed(audit_log)
    [rec] = await records(store)
    assert (rec.method, rec.outcome, rec.subject, rec.authenticated_by) == ("resources/read", "error", "svc",
                                                                           "api_key")  # fmt: skip
    assert rec.extra == {"dlp": "clean", "exception": "LookupError"}
    assert (rec.arg_keys, rec.args_digest) == ((), None)


async def test_non_tool_methods_keep_no_argument_digest(audit_log: AuditLog, store: Store) -> None:
    await AuditStage(audit_log)(make_exchange("tools/list", arguments={"cursor": "abc"}), echo)
    await flushed(audit_log)
    [rec] = await records(store)
    assert (rec.method, rec.arg_keys, rec.args_digest) == ("tools/list", (), None)


async def test_a_reply_already_encoded_is_not_encoded_again(audit_log: AuditLog, store: Store) -> None:
    async def pre_encoded(exchange: Exchange) -> Reply:
        reply = Reply.ok({"content": []})
        reply.encoded = b"x" * 77
        return reply

    await AuditStage(audit_log)(make_exchange(), pre_encoded)
    await flushed(audit_log)
    [rec] = await records(store)
    assert rec.response_bytes == 77
