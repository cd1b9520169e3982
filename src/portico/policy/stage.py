"""`PolicyStage`: every call is judged before it can reach an upstream, and every listing shows only what the
caller may use.

Sits after `RouteStage` (which resolved the server and the upstream's own name) and before `CatalogStage`
(which answers listings through the `visible` predicates this stage adds). A denied call ends here with a
`DeniedError` carrying the reason; allowed or not, the `Decision` is left in `exchange.notes["decision"]` for
the audit stage. Fails closed: a guarded call whose target cannot be made out is denied.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from portico.catalog.catalog import Entry
from portico.catalog.stage import add_visibility
from portico.errors import DeniedError
from portico.policy.cache import DEFAULT_MAX_ENTRIES, AnnotationMemo, DecisionCache, decision_key
from portico.policy.decide import decide, visibility
from portico.policy.model import KIND_OF, CompiledPolicy, Request, device_state_of, facts_of
from portico.policy.settings import PolicyKind
from portico.types import CallNext, Decision, Exchange, Reply

# Methods that use one tool, prompt or resource: judged, and refused when denied.
GUARDED = frozenset({"tools/call", "prompts/get", "resources/read", "resources/subscribe", "completion/complete"})
# Methods answered from the catalog: filtered to what the caller may use.
LISTINGS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})
UNROUTED_RULE = "policy.unrouted"

Target = tuple[str, PolicyKind, str, object]  # server id, kind, upstream name or URI, raw annotations


class PolicyStage:
    """Judge guarded calls and filter listings with the policy `get_policy` returns at that moment.

    `get_policy` is read on every exchange, so a run-time edit (a new `CompiledPolicy` swapped in) applies to
    the next exchange and empties the decision cache. `clock` must return timezone-aware datetimes.
    """

    def __init__(
        self,
        get_policy: Callable[[], CompiledPolicy],
        clock: Callable[[], datetime],
        max_cached: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._get_policy = get_policy
        self._clock = clock
        self.cache = DecisionCache(max_cached)
        self._annotations = AnnotationMemo()

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Raises:
        DeniedError: the policy does not permit this call (its public message is the decision's reason).
        """
        method = exchange.method
        if method in GUARDED:
            decision = self.decide(exchange)
            exchange.notes["decision"] = decision
            if not decision.allowed:
                raise DeniedError(decision.reason)
        elif method in LISTINGS:
            add_visibility(exchange, self._visible(exchange))
        elif method == "subscriptions/listen":
            exchange.notes["may_read"] = self._may_read(exchange)
        return await call_next(exchange)

    def _may_read(self, exchange: Exchange) -> Callable[[str, str], bool]:
        """For a modern `subscriptions/listen`: whether the caller may read (so watch) a resource. A resource it
        may not read is left out of the subscription, as it is left out of `resources/list`."""
        principal, policy, now = exchange.principal, self._get_policy(), self._clock()
        device = device_state_of(principal)

        def may_read(server_id: str, uri: str) -> bool:
            return decide(policy, Request(principal, server_id, "resources", uri, now, device)).allowed

        return may_read

    def decide(self, exchange: Exchange) -> Decision:
        """The decision for a guarded exchange (cached)."""
        target = target_of(exchange)
        if target is None:
            return Decision(False, UNROUTED_RULE, "the call's target could not be resolved")
        server_id, kind, name, raw_annotations = target
        principal, policy, now = exchange.principal, self._get_policy(), self._clock()
        device = device_state_of(principal)
        annotations = self._annotations(kind, raw_annotations)
        # The key first: on a hit no Request is built at all.
        key = decision_key(policy, principal, device, server_id, kind, name, annotations, now)
        decision = self.cache.get(policy, key)
        if decision is None:
            decision = decide(policy, Request(principal, server_id, kind, name, now, device, annotations))
            self.cache.put(key, decision)
        return decision

    def _visible(self, exchange: Exchange) -> Callable[[Entry], bool]:
        principal = exchange.principal
        facts = facts_of(principal, device_state_of(principal), self._clock())
        check = visibility(self._get_policy(), facts, self._annotations)

        def visible(entry: Entry) -> bool:
            kind = KIND_OF[entry.kind]
            return check(entry.server_id, kind, entry.name, entry.definition.get("annotations"))

        return visible


def target_of(exchange: Exchange) -> Target | None:
    """What a guarded exchange uses, as `RouteStage` resolved it; None when it cannot be made out."""
    method, server_id = exchange.method, exchange.server_id
    if method in ("tools/call", "prompts/get"):
        entry = exchange.notes.get("entry")
        if not isinstance(entry, Entry):
            return None
        return entry.server_id, KIND_OF[entry.kind], entry.name, entry.definition.get("annotations")
    if server_id is None:
        return None
    if method in ("resources/read", "resources/subscribe"):
        uri = exchange.target
        return (server_id, "resources", uri, None) if uri is not None else None
    if method == "completion/complete":
        ref = exchange.params.get("ref")
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            return server_id, "prompts", ref["name"], None
        if isinstance(ref, dict) and ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            return server_id, "resources", ref["uri"], None
    return None
