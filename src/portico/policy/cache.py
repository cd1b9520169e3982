"""What the hot path remembers: decisions (a bounded LRU per compiled policy) and tools' effective annotations.

A decision's key holds the caller's subject, groups, MFA, device state, IP, country and client id, the server,
kind, name and effective annotations, and the minute — the minute only when some rule has a time window
(windows are written to the minute and every zone's offset is whole minutes, so a decision cannot change
within one). A policy is replaced, never edited, so the cache empties itself whenever it is handed a different
policy object.

Neither is shared between threads: each stage (on its event loop) keeps its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime

from portico.policy.conditions import DeviceState
from portico.policy.decide import decide
from portico.policy.model import Annotations, CompiledPolicy, Request, country_of, effective_annotations
from portico.policy.settings import PolicyKind
from portico.types import Decision, Principal

DEFAULT_MAX_ENTRIES = 10_000
Key = tuple[Hashable, ...]


def decision_key(
    policy: CompiledPolicy,
    principal: Principal,
    device_state: DeviceState,
    server_id: str,
    kind: PolicyKind,
    name: str,
    annotations: Annotations,
    now: datetime,
) -> Key:
    """Everything `decide` reads: two requests with equal keys get equal decisions under `policy`."""
    minute = int(now.timestamp()) // 60 if policy.uses_time else 0
    p = principal
    return (p.subject, p.groups, p.mfa, device_state, p.ip, country_of(p), p.client_id,
            server_id, kind, name, annotations, minute)  # fmt: skip


def request_key(policy: CompiledPolicy, request: Request) -> Key:
    r = request
    return decision_key(policy, r.principal, r.device_state, r.server_id, r.kind, r.name, r.annotations, r.now)


class DecisionCache:
    """`decide`, remembered: at most `max_entries` decisions, least recently used dropped first."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        """Raises:
        ValueError: `max_entries` is below 1.
        """
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._policy: CompiledPolicy | None = None
        self._decisions: OrderedDict[Key, Decision] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._decisions)

    def decide(self, policy: CompiledPolicy, request: Request) -> Decision:
        """The decision for `request` under `policy`, from the cache when this policy already made it."""
        key = request_key(policy, request)
        decision = self.get(policy, key)
        if decision is None:
            decision = decide(policy, request)
            self.put(key, decision)
        return decision

    def get(self, policy: CompiledPolicy, key: Key) -> Decision | None:
        """A remembered decision (for a key from `decision_key`), or None; a new `policy` empties the cache."""
        if policy is not self._policy:
            self._decisions.clear()
            self._policy = policy
        decision = self._decisions.get(key)
        if decision is None:
            self.misses += 1
            return None
        self._decisions.move_to_end(key)
        self.hits += 1
        return decision

    def put(self, key: Key, decision: Decision) -> None:
        """Remember a decision made under the policy of the last `get`."""
        self._decisions[key] = decision
        if len(self._decisions) > self.max_entries:
            self._decisions.popitem(last=False)


class AnnotationMemo:
    """`effective_annotations` per catalog definition, by object identity.

    The catalog keeps an entry's definition object untouched until it re-lists the server (and then makes new
    ones), so after the first call a tool's annotations cost one dict probe. The memo holds each raw object it
    keyed on, so an id cannot be reused while remembered; it is emptied when full.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._memo: dict[int, tuple[object, Annotations]] = {}

    def __call__(self, kind: PolicyKind, raw: object) -> Annotations:
        if kind != "tools" or not raw:
            return effective_annotations(kind, raw)
        hit = self._memo.get(id(raw))
        if hit is not None and hit[0] is raw:
            return hit[1]
        annotations = effective_annotations(kind, raw)
        if len(self._memo) >= self.max_entries:
            self._memo.clear()
        self._memo[id(raw)] = (raw, annotations)
        return annotations
