"""The sign-in state that crosses the browser round trip: sealed in a cookie, bound to its state and provider,
short-lived and single-use; and every sign-in audited."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from portico.audit import AuditLog
from portico.store import Store
from tests.audit.support import flushed, records
from tests.identity.sso.support import (
    PROVIDER,
    back_from_idp,
    browser,
    provider_settings,
    refusal,
    running_gateway,
    sign_in,
    to_idp,
)
from tests.support.oidc_issuer import OidcIssuer

pytestmark = pytest.mark.anyio


def _state_cookie(client: httpx2.AsyncClient) -> tuple[str, str]:
    [(name, value)] = [(c.name, c.value or "") for c in client.cookies.jar if c.name.startswith("portico_sso_")]
    return name, value


class OffsetClock:
    """Wall-clock time the test can move forward (the issuer keeps real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_the_state_cookie_is_httponly_lax_scoped_and_short_lived(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        start = await to_idp(client, gw)
        header = start.headers["set-cookie"]
        assert header.startswith("portico_sso_")
        for attribute in ("HttpOnly", "SameSite=lax", "Path=/login/sso/", "Max-Age=600"):
            assert attribute in header
        assert "Secure" not in header  # http on loopback; https public URLs get Secure
        final = await client.get((await back_from_idp(client, start)).headers["location"])
        assert final.status_code == 200
        assert "Max-Age=0" in final.headers["set-cookie"]  # spent: cleared
        assert [c for c in client.cookies.jar if c.name.startswith("portico_sso_")] == []


@pytest.mark.requirement("sso:state-bound")
async def test_a_changed_state_is_refused(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        callback = (await back_from_idp(client, await to_idp(client, gw))).headers["location"]
        state = parse_qs(urlsplit(callback).query)["state"][0]
        response = await client.get(callback.replace(state, state[:-2] + ("AA" if state[-2:] != "AA" else "BB")))
        assert (response.status_code, refusal(response)) == (400, "state_invalid")
        assert gw.logins == []


@pytest.mark.requirement("sso:state-sealed")
async def test_a_tampered_state_cookie_is_refused(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        callback = (await back_from_idp(client, await to_idp(client, gw))).headers["location"]
        name, value = _state_cookie(client)
        flipped = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
        client.cookies.set(name, flipped, domain="127.0.0.1", path="/login/sso/")
        response = await client.get(callback)
        assert refusal(response) == "state_invalid"
        assert gw.logins == []


@pytest.mark.requirement("sso:no-login-csrf")
async def test_a_callback_in_a_browser_that_did_not_start_the_sign_in_is_refused(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as victim, browser() as attacker:
        callback = (await back_from_idp(attacker, await to_idp(attacker, gw))).headers["location"]
        response = await victim.get(callback)  # login CSRF: the attacker's code in the victim's browser
        assert refusal(response) == "state_invalid"
        assert gw.logins == []


@pytest.mark.requirement("sso:state-single-use")
async def test_a_replayed_callback_is_refused(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as gw, browser() as client:
        callback = (await back_from_idp(client, await to_idp(client, gw))).headers["location"]
        name, value = _state_cookie(client)
        assert (await client.get(callback)).status_code == 200
        client.cookies.set(name, value, domain="127.0.0.1", path="/login/sso/")  # put the spent cookie back
        response = await client.get(callback)
        assert refusal(response) == "state_replayed"
        assert len(gw.logins) == 1


@pytest.mark.requirement("sso:state-expires")
async def test_a_sign_in_that_took_too_long_is_refused(issuer: OidcIssuer) -> None:
    clock = OffsetClock()
    async with running_gateway(issuer, clock=clock) as gw, browser() as client:
        callback = (await back_from_idp(client, await to_idp(client, gw))).headers["location"]
        clock.offset = 601  # state_ttl_s is 600
        response = await client.get(callback)
        assert refusal(response) == "state_expired"


async def test_a_state_cookie_only_opens_for_the_provider_it_was_made_for(issuer: OidcIssuer) -> None:
    one = provider_settings(issuer, id="one", display_name="One")
    two = provider_settings(issuer, id="two", display_name="Two")
    async with running_gateway(issuer, one, two) as gw, browser() as client:
        start = await client.get(f"{gw.base}/login/sso/one?request=r1")
        callback = (await back_from_idp(client, start)).headers["location"]
        response = await client.get(callback.replace("/login/sso/one/", "/login/sso/two/"))
        assert refusal(response) == "state_invalid"


async def test_replicas_sharing_the_state_key_complete_each_others_sign_ins(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer) as first, running_gateway(issuer, public_url=first.base) as second:
        async with browser() as client:
            callback = (await back_from_idp(client, await to_idp(client, first))).headers["location"]
            response = await client.get(callback.replace(first.base, second.base))  # the balancer picked `second`
        assert response.status_code == 200
        assert (len(first.logins), len(second.logins)) == (0, 1)


async def test_a_replica_with_another_state_key_cannot_open_the_state(issuer: OidcIssuer) -> None:
    async with (
        running_gateway(issuer) as first,
        running_gateway(issuer, public_url=first.base, state_key=b"k" * 32) as second,
        browser() as client,
    ):
        callback = (await back_from_idp(client, await to_idp(client, first))).headers["location"]
        response = await client.get(callback.replace(first.base, second.base))
        assert refusal(response) == "state_invalid"


# --- audit ---


@pytest.mark.requirement("sso:audited")
async def test_a_sign_in_is_audited(issuer: OidcIssuer, audit_log: AuditLog, sqlite_store: Store) -> None:
    async with running_gateway(issuer, audit=audit_log) as gw, browser() as client:
        assert (await sign_in(client, gw)).status_code == 200
    await flushed(audit_log)
    [record] = await records(sqlite_store)
    assert (record.method, record.subject, record.outcome, record.decision) == (
        "auth.sso", f"{PROVIDER}:00u-alice", "ok", "allow")  # fmt: skip
    assert (record.target, record.authenticated_by, record.ip, record.reason) == (PROVIDER, "sso", "127.0.0.1", None)


@pytest.mark.requirement("sso:audited")
async def test_refused_sign_ins_are_audited_with_their_reason(
    issuer: OidcIssuer, audit_log: AuditLog, sqlite_store: Store
) -> None:
    settings: dict[str, Any] = {"group_map": {"g-eng": "eng"}, "allowed_groups": ["ops"]}
    async with running_gateway(issuer, audit=audit_log, **settings) as gw, browser() as client:
        assert refusal(await sign_in(client, gw)) == "group_not_allowed"
        issuer.deny = True
        assert refusal(await sign_in(client, gw)) == "idp_error"
        issuer.deny, issuer.fault = False, "wrong_nonce"
        denied = await sign_in(client, gw)
        assert refusal(denied) == "id_token_nonce"
    await flushed(audit_log)
    rows = [(r.subject, r.outcome, r.reason, r.extra) for r in await records(sqlite_store)]
    assert rows == [
        (f"{PROVIDER}:00u-alice", "denied", "group_not_allowed", None),  # the IdP vouched: the subject is known
        ("anonymous", "denied", "idp_error", {"idp_error": "access_denied"}),
        ("anonymous", "denied", "id_token_nonce", None),
    ]
    # the page's reference is the audit record's id
    assert (await records(sqlite_store))[-1].id in denied.text


async def test_behind_an_https_public_url_the_cookie_is_secure_and_under_its_path(issuer: OidcIssuer) -> None:
    async with running_gateway(issuer, public_url="https://portico.example.com/gw") as gw, browser() as client:
        start = await client.get(gw.start_url())
    header = start.headers["set-cookie"]
    assert "Secure" in header
    assert "Path=/gw/login/sso/" in header
    redirect_uri = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"][0]
    assert redirect_uri == "https://portico.example.com/gw/login/sso/test/callback"
