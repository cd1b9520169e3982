"""`DlpStage`: sensitive values are blocked, masked or logged on their way to an upstream and back, by rules
about where they are going (`dlp.rules`).

Sits after `PolicyStage` (only calls the caller may make are scanned, and the route is resolved) and before
`CatalogStage` and the upstream terminal. Scanned: `tools/call`, `prompts/get`, `resources/read` and
`completion/complete` — the request payload (arguments, `inputResponses`, completion arguments, the resource
URI) before `call_next`; the result, or the upstream's JSON-RPC error (whose message and data often echo the
input), after it. A block raises `DlpBlockedError` (-32001): a blocked request never reaches the upstream, a
blocked result never reaches the client. A redaction masks the values in a copy of the same structure
(`portico.dlp.redact`) and passes that on. Not scanned: what travels on the exchange's sink while a call runs
(progress, log notifications, sampling and elicitation requests and their answers), and `resources/subscribe`
URIs.

Every finding goes to the audit record (`extra.dlp`: detector, rule, action, direction, JSON path, keyed
fingerprint; never the value) and to `portico_dlp_findings_total`; `extra.dlp_decision` holds, per direction
scanned, `pass`, `log`, `redact` or `block`. When the audit record is written the exchange holds the masked
request even when a `log` rule let the value through, so neither `target` (a resource URI) nor `arg_keys` can
carry it.

Fails closed: an exception while scanning propagates (to `ErrorStage`: -32603, a generic message), before the
request is forwarded or instead of the result; `dlp_decision` then reads `failed`.

Size: everything is scanned. Payloads are already bounded by `http.max_body_bytes` (requests) and
`servers[].max_message_bytes` (results); a cap below those would let a value through by padding the payload.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portico.dlp import Finding, fingerprint, matched_text, redact, redact_text
from portico.dlp.rules import RANK, CompiledRule, Direction, DlpRules, Plan, compile_rules
from portico.errors import DlpBlockedError
from portico.keyfile import load_or_create
from portico.types import JSON, CallNext, Decision, Exchange, Reply, RpcError

if TYPE_CHECKING:
    from portico.config import Settings
    from portico.metrics import Metrics

# Params that carry the caller's data to the upstream, per scanned method (resources/read: the URI, see below).
REQUEST_PARAMS: dict[str, tuple[str, ...]] = {
    "tools/call": ("arguments", "inputResponses"),
    "prompts/get": ("arguments", "inputResponses"),
    "completion/complete": ("argument", "context"),
    "resources/read": ("uri",),
}
RESULT_PATH = "result"
ERROR_PATH = "error"  # an upstream's JSON-RPC error: `error.message`, `error.data`
MAX_AUDITED_FINDINGS = 100  # per exchange; the rest are counted (`dlp_unlisted`), as the metric counts them all
MAX_SHOWN_KEY = 40
MAX_SHOWN_PATH = 240
_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Judged:
    """A finding with the rule that acts on it, where it is (keys masked) and the fingerprint of its value."""

    finding: Finding
    rule: CompiledRule
    path: str
    fingerprint: str


class DlpStage:
    """Apply `rules` to every scanned exchange; `key` is the fingerprint HMAC key."""

    def __init__(self, rules: DlpRules, key: bytes, count: Callable[[str, str, str], None] | None = None) -> None:
        self._rules = rules
        self._key = key
        self._count = count

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> DlpStage:
        """Compile `settings.dlp` against the configured servers; the key file is created (0600) on first use.

        Raises:
            ConfigError: a rule names a tag or server id that no configured server has.
        """
        dlp = settings.dlp
        rules = compile_rules(dlp, {server.id: server.tags for server in settings.servers})
        key = b""
        if rules.active:
            key = bytes.fromhex(load_or_create(dlp.fingerprint_key_file, lambda: secrets.token_hex(32)))
        return cls(rules, key, None if metrics is None else _counter(metrics))

    def adopt(self, fresh: DlpStage) -> None:
        """Enforce `fresh`'s rules from the next exchange on (a run-time reload; exchanges in flight finish under
        the plans they took)."""
        self._rules, self._key = fresh._rules, fresh._key

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Raises:
        DlpBlockedError: a `block` rule caught a value in the request (not forwarded) or in the result.
        """
        if not self._rules.active or exchange.method not in REQUEST_PARAMS:
            return await call_next(exchange)
        server_id, name = _destination(exchange)
        groups = exchange.principal.groups
        plan = self._rules.plan(server_id, name, "request", groups)
        masked: Callable[[], None] | None = None
        if plan.scanner is not None:
            masked = self._check_request(exchange, plan)
        try:
            reply = await call_next(exchange)
        finally:
            if masked is not None:
                masked()  # the audit record, written after this returns, sees only the masked request
        plan = self._rules.plan(server_id, name, "response", groups)
        if plan.scanner is not None:
            self._check_response(exchange, reply, plan)
        return reply

    def _check_request(self, exchange: Exchange, plan: Plan) -> Callable[[], None] | None:
        """Block or mask the request in place; returns what masks the rest (`log` findings) for the audit."""
        assert plan.scanner is not None
        decisions = _decisions(exchange)
        decisions["request"] = _FAILED  # until the scan below completes
        payload = _request_payload(exchange)
        found = plan.scanner.scan(payload)
        if not found:
            decisions["request"] = "pass"
            return None
        judged = self._judge(exchange, plan, payload, found, "request", "")
        strongest = max((j.rule.action for j in judged), key=RANK.__getitem__)
        decisions["request"] = strongest
        if strongest == "block":
            _put_request(exchange, redact(payload, found))  # what the audit record sees; nothing is forwarded
            raise _refusal(exchange, judged)
        to_mask = [j.finding for j in judged if j.rule.action == "redact"]
        if to_mask:
            _put_request(exchange, redact(payload, to_mask))
        if len(to_mask) == len(found):
            return None
        return lambda: _put_request(exchange, redact(payload, found))

    def _check_response(self, exchange: Exchange, reply: Reply, plan: Plan) -> None:
        """Block or mask the result, or the upstream's error (its message and data often echo the input)."""
        assert plan.scanner is not None
        if reply.result is not None:
            root, prefix = reply.result, RESULT_PATH
        elif reply.error is not None:
            root, prefix = {"message": reply.error.message, "data": reply.error.data}, ERROR_PATH
        else:
            return
        decisions = _decisions(exchange)
        decisions["response"] = _FAILED
        found = plan.scanner.scan(root, prefix)
        if not found:
            decisions["response"] = "pass"
            return
        judged = self._judge(exchange, plan, root, found, "response", prefix)
        strongest = max((j.rule.action for j in judged), key=RANK.__getitem__)
        decisions["response"] = strongest
        if strongest == "block":
            raise _refusal(exchange, judged)
        to_mask = [j.finding for j in judged if j.rule.action == "redact"]
        if not to_mask:
            return
        masked = redact(root, to_mask, prefix)
        if reply.error is not None:
            reply.error = RpcError(reply.error.code, masked["message"], masked["data"])
        else:
            reply.result = masked
            reply.encoded = None  # it cached the unmasked result

    def _judge(
        self, exchange: Exchange, plan: Plan, root: Any, found: list[Finding], direction: Direction, prefix: str
    ) -> list[Judged]:
        keys = _key_findings(found)
        places: dict[tuple[str, bool], tuple[str, str]] = {}  # several findings often share one string
        prints: dict[str, str] = {}
        judged = []
        for finding in found:
            place = places.get((finding.path, finding.in_key))
            if place is None:
                place = places[finding.path, finding.in_key] = locate(root, finding, prefix, keys)
            text, shown = place
            value = matched_text(text, finding)
            mark = prints.get(value)
            if mark is None:
                mark = prints[value] = fingerprint(value, self._key)
            judged.append(Judged(finding, plan.deciding[finding.detector], shown, mark))
        extra = exchange.notes.setdefault("audit_extra", {})
        listed: list[JSON] = extra.setdefault("dlp", [])
        room = MAX_AUDITED_FINDINGS - len(listed)
        for j in judged[:room]:
            entry: JSON = {
                "detector": j.finding.detector,
                "rule": j.rule.id,
                "action": j.rule.action,
                "direction": direction,
                "path": _clip(j.path),
                "fingerprint": j.fingerprint,
            }
            if j.finding.encoding is not None:
                entry["encoding"] = j.finding.encoding
            listed.append(entry)
        if len(judged) > room:
            extra["dlp_unlisted"] = extra.get("dlp_unlisted", 0) + len(judged) - max(room, 0)
        if self._count is not None:
            for j in judged:
                self._count(j.finding.detector, j.rule.action, direction)
        return judged


def _counter(metrics: Metrics) -> Callable[[str, str, str], None]:
    # `.labels()` costs a lock and a tuple build; the label sets are few, so keep the children.
    children: dict[tuple[str, str, str], Any] = {}

    def count(detector: str, action: str, direction: str) -> None:
        key = (detector, action, direction)
        child = children.get(key)
        if child is None:
            child = children[key] = metrics.dlp_findings.labels(*key)
        child.inc()

    return count


def _destination(exchange: Exchange) -> tuple[str, str]:
    """(server id, the upstream's own name: tool, prompt, resource URI) of a routed exchange.

    Raises:
        DlpBlockedError: the route is unknown, so no rule can be judged (fail closed; the route stage makes this
            unreachable for well-formed calls).
    """
    server_id = exchange.server_id
    name: object = exchange.target
    if exchange.method == "completion/complete":
        ref = exchange.params.get("ref")
        name = (ref.get("name") or ref.get("uri")) if isinstance(ref, dict) else None
    if server_id is None or not isinstance(name, str):
        raise DlpBlockedError("Blocked by data loss prevention: the destination could not be determined")
    return server_id, name


def _decisions(exchange: Exchange) -> dict[str, str]:
    extra = exchange.notes.setdefault("audit_extra", {})
    decisions: dict[str, str] = extra.setdefault("dlp_decision", {})
    return decisions


def _request_payload(exchange: Exchange) -> JSON:
    if exchange.method == "resources/read":
        return {"uri": exchange.target}  # the upstream's own URI: what is forwarded (see UpstreamTerminal)
    params = exchange.params
    return {key: params[key] for key in REQUEST_PARAMS[exchange.method] if key in params}


def _put_request(exchange: Exchange, payload: JSON) -> None:
    """Make `payload` (a masked copy from `_request_payload`) what the exchange carries."""
    if exchange.method == "resources/read":
        exchange.target = payload["uri"]
        exchange.params = {**exchange.params, "uri": payload["uri"]}
    else:
        exchange.params = {**exchange.params, **payload}


def _refusal(exchange: Exchange, judged: list[Judged]) -> DlpBlockedError:
    first = next(j for j in judged if j.rule.action == "block")
    others = sum(1 for j in judged if j.rule.action == "block") - 1
    more = f" (and {others} more)" if others else ""
    message = (
        f"Blocked by data loss prevention: rule {first.rule.id!r} found {first.finding.detector} "
        f"in {_clip(first.path) or 'the payload'}{more}"
    )
    exchange.notes["decision"] = Decision(False, f"dlp.{first.rule.id}", message)
    return DlpBlockedError(message)


# ------------------------------------------------------------------------------------------ finding paths

# The path syntax of `Finding.path`: `a.b`, `a[3]`, `a["odd key"]` (backslash and quote escaped).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]|\["((?:[^"\\]|\\.)*)"\]')
_UNESCAPE = re.compile(r"\\(.)")


def _key_findings(found: list[Finding]) -> dict[str, list[Finding]]:
    keys: dict[str, list[Finding]] = {}
    for f in found:
        if f.in_key:
            keys.setdefault(f.path, []).append(f)
    return keys


def locate(root: Any, finding: Finding, prefix: str, keys: dict[str, list[Finding]]) -> tuple[str, str]:
    """The string `finding` was found in (a value, or a dict key when `in_key`), and its path fit to show: dict
    keys that hold findings themselves (`keys`, by path) are masked, the rest clipped to printable characters.

    Raises:
        LookupError: the path does not lead to a string in `root` (the payload changed since it was scanned).
    """
    path = finding.path
    if not path.startswith(prefix):
        raise LookupError("finding path outside the scanned value")
    node, pos, shown, last_key = root, len(prefix), prefix, None
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise LookupError("unreadable finding path")
        name, index, quoted = m.groups()
        step: str | int = name if name is not None else int(index) if index is not None else _unescape(quoted)
        pos = m.end()
        if isinstance(step, int):
            if not isinstance(node, list | tuple) or step >= len(node):
                raise LookupError("finding path does not fit the value")
            node, last_key = node[step], None
            shown += f"[{step}]"
        else:
            if not isinstance(node, dict) or step not in node:
                raise LookupError("finding path does not fit the value")
            node, last_key = node[step], step
            hits = keys.get(path[:pos])
            shown += _show_key(redact_text(step, hits) if hits else step, first=not shown)
    if finding.in_key:
        if last_key is None:
            raise LookupError("a key finding whose path ends in no key")
        return last_key, shown
    if not isinstance(node, str):
        raise LookupError("finding path does not lead to a string")
    return node, shown


def _unescape(quoted: str) -> str:
    return _UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted


def _clip(path: str) -> str:
    return path if len(path) <= MAX_SHOWN_PATH else path[:MAX_SHOWN_PATH] + "…"


def _show_key(key: str, *, first: bool) -> str:
    if len(key) <= MAX_SHOWN_KEY and _NAME.fullmatch(key):
        return key if first else f".{key}"
    clean = "".join(c if c.isprintable() else "?" for c in key[:MAX_SHOWN_KEY])
    clean += "…" if len(key) > MAX_SHOWN_KEY else ""
    if _NAME.fullmatch(clean):
        return clean if first else f".{clean}"
    escaped = clean.replace("\\", "\\\\").replace('"', '\\"')
    return f'["{escaped}"]'
