"""The pure parts of public-server mode: the token bucket on a clock the test moves, the address a bucket is
keyed by, the anonymous view of a policy, and admission at the edge."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from portico.errors import RATE_LIMITED
from portico.inspection.public import ANONYMOUS, PUBLIC, PublicAccess, anonymous_view
from portico.inspection.settings import PublicSettings
from portico.metrics import Metrics
from portico.policy import PolicySettings, Request, decide
from portico.transport.endpoint import Refusal
from portico.transport.ratelimit import RateLimiter, address_key
from portico.types import Principal

NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_the_burst_then_one_request_per_refill_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.5, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(2.0)  # one token every 2 s
    assert limiter.take("b") == 0.0  # another address has its own bucket
    clock.now += 2.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_a_refused_request_takes_nothing_so_waiting_the_retry_after_is_enough() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    limiter.take("a")
    for _ in range(5):
        wait = limiter.take("a")
    clock.now += wait
    assert limiter.take("a") == 0.0


def test_past_max_keys_the_longest_idle_address_is_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.1, burst=1, max_keys=2, clock=clock)
    limiter.take("old")
    limiter.take("recent")
    limiter.take("recent")
    limiter.take("new")
    assert len(limiter) == 2
    assert limiter.take("recent") > 0  # kept: still limited
    assert limiter.take("old") == 0.0  # forgotten: a full bucket again


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_a_bucket_is_keyed_by_ipv4_address_or_ipv6_network(ip: str | None, key: str) -> None:
    assert address_key(ip, 64) == key


def test_admission_gives_an_anonymous_public_principal_then_a_429_with_a_json_rpc_body() -> None:
    access = PublicAccess(
        {"docs": PublicSettings(rate_limit={"burst": 1, "requests_per_minute": 1})}, 4096, Metrics(), Clock()
    )
    admitted = access.admit("docs", "198.51.100.1")
    assert admitted == Principal(subject=ANONYMOUS, authenticated_by=PUBLIC, ip="198.51.100.1")
    refused = access.admit("docs", "198.51.100.1")
    assert isinstance(refused, Refusal)
    assert refused.status == 429
    assert dict(refused.headers)[b"retry-after"] == b"60"
    assert orjson.loads(refused.body) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": RATE_LIMITED, "message": "Too many requests: retry later"},
    }


def test_the_small_body_limit_is_for_anonymous_callers_of_public_servers_only() -> None:
    access = PublicAccess({"docs": PublicSettings(max_body_bytes=1024)}, 4096)
    public = Principal(subject=ANONYMOUS, authenticated_by=PUBLIC)
    assert access.body_limit("docs", public) == 1024
    assert access.body_limit("docs", Principal("alice", authenticated_by="jwt")) == 4096
    assert access.body_limit(None, public) == 4096
    assert PublicAccess({"docs": PublicSettings(max_body_bytes=10_000)}, 4096).body_limit("docs", public) == 4096


def test_a_disabled_public_section_admits_nobody() -> None:
    access = PublicAccess({"docs": PublicSettings.model_validate(False)}, 4096)
    assert not access.is_public("docs")


POLICY = PolicySettings.model_validate(
    {
        "default": "permit",
        "rules": [
            {"id": "named", "effect": "permit", "servers": ["docs"], "tools": ["read"], "users": ["anonymous"]},
            {"id": "glob", "effect": "permit", "servers": ["docs"], "users": ["*"]},
            {"id": "staff", "effect": "permit"},
            {"id": "no-delete", "effect": "forbid", "tools": ["delete*"]},
        ],
    }
)


@pytest.mark.requirement("public:anonymous-needs-a-rule-naming-them")
@pytest.mark.parametrize(
    ("tool", "allowed", "rule"),
    [
        ("read", True, "named"),
        ("write", False, "policy.default"),  # `glob`, `staff` and `default: permit` do not count for them
        ("delete-all", False, "no-delete"),
    ],
)
def test_the_anonymous_view_keeps_every_forbid_and_only_the_permits_naming_anonymous(
    tool: str, allowed: bool, rule: str
) -> None:
    anonymous = Principal(subject=ANONYMOUS, authenticated_by=PUBLIC)
    decision = decide(anonymous_view(POLICY), Request(anonymous, "docs", "tools", tool, NOW, "none"))
    assert (decision.allowed, decision.rule) == (allowed, rule)
