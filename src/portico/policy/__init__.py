"""Per-tool policy: declarative permit/forbid rules over servers, tools, prompts and resources, with conditions
on the caller (users, groups, MFA, device, network, country, time window, client).

Sits in the pipeline after routing and before the catalog: `PolicyStage` (in `portico.policy.stage`) judges
every call and filters every listing. The rest is pure: `settings` (the `policy:` config section), `model`
(the compiled policy and the request), `conditions` (compiled matchers), `decide` (decide, explain,
visibility) and `cache` (a bounded LRU of decisions).

May import `portico.types` and `portico.errors`; `stage` alone also imports `portico.catalog` (Entry,
add_visibility). This `__init__` does not import `stage`, so `portico.config` can import the settings model
without pulling in the catalog (which itself imports `portico.config`).
"""

from portico.policy.cache import AnnotationMemo, DecisionCache
from portico.policy.decide import Explanation, RuleCheck, decide, explain, visibility
from portico.policy.model import CompiledPolicy, CompiledRule, Request, compile_policy, effective_annotations
from portico.policy.settings import PolicySettings, RuleSettings

__all__ = [
    "AnnotationMemo",
    "CompiledPolicy",
    "CompiledRule",
    "DecisionCache",
    "Explanation",
    "PolicySettings",
    "Request",
    "RuleCheck",
    "RuleSettings",
    "compile_policy",
    "decide",
    "effective_annotations",
    "explain",
    "visibility",
]
