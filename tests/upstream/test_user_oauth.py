"""Per-user upstream OAuth, end to end: a real Portico, a real protected MCP upstream with its own AS, a browser."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import httpx2
import pytest

from portico.audit import verify as reading
from portico.config import Settings
from portico.connect import ConnectApp
from portico.errors import ConfigError
from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.users import UserDirectory
from portico.store import open_store
from portico.upstream.oauth_client import TOKENS_NAME, TokenSet
from portico.upstream.user_pool import OAuthUpstream
from portico.vault import SecretNotFoundError, Vault
from tests.support.browser import FormBrowser
from tests.support.oauth import REDIRECT, submit_password
from tests.support.portico import Running, make_settings, serve
from tests.support.waits import eventually
from tests.support.wire import modern_call, open_legacy_session, rpc_answer
from tests.upstreams.protected import ProtectedUpstream

pytestmark = pytest.mark.anyio
SERVER = "protected"
TOOL = f"{SERVER}__whoami"
NEVER = "http://127.0.0.1:9/never"


PASSWORD = "a-long-enough-portico-password"


@asynccontextmanager
async def signed_in_browser(running: Running, subject: str, stop_at: str = NEVER) -> AsyncIterator[FormBrowser]:
    """A browser signed in to Portico as `subject` (through an ordinary OAuth sign-in of some client), as the
    person's own browser is after their MCP client signed them in: the connect pages require it."""
    async with FormBrowser(stop_at=(stop_at, REDIRECT)) as browser:
        page = await submit_password(browser, running.base, running.url, subject, PASSWORD)
        page = await browser.submit(page.form("decision"), button="approve")
        assert page.callback is not None, page.text
        yield browser


def settings_for(tmp: Path, upstream: ProtectedUpstream, **oauth: Any) -> Settings:
    server = {
        "id": SERVER,
        "title": "Protected Files",
        "url": upstream.mcp_url,
        "oauth": {"catalog_credential": "${vault:catalog_token}", **oauth},
    }
    if server["oauth"]["catalog_credential"] is None:
        del server["oauth"]["catalog_credential"]
    return make_settings(
        tmp,
        [server],
        vault={"key_file": str(tmp / "vault.key")},
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp / "keys.json")}},
    )


@asynccontextmanager
async def gateway(
    tmp: Path, upstream: ProtectedUpstream, *, listed: bool = True, **oauth: Any
) -> AsyncIterator[Running]:
    settings = settings_for(tmp, upstream, **oauth)
    store = await open_store(settings.store)
    await Vault(store, settings.vault).put(f"server:{SERVER}", "catalog_token", str(upstream.catalog_token))
    await store.close()
    async with serve(settings) as running:
        portico = running.portico
        assert portico.store is not None
        assert portico.vault is not None
        assert portico.connect is not None
        assert portico.connect.client.audit is portico.audit
        users = UserDirectory(portico.store, portico.vault, hasher=PasswordHasher(Argon2Params(1, 1024)))
        for subject in ("alice", "bob"):
            await users.add_user(subject, PASSWORD)
        if listed:
            await eventually(lambda: running.portico.catalog.resolve("tools", None, TOOL) is not None, 30)
        yield running


def client_token(running: Running, subject: str) -> str:
    assert running.portico.token_issuer is not None
    return running.portico.token_issuer.issue(subject, running.url, scopes=["mcp"], client_id="c")


async def legacy_call(running: Running, subject: str) -> dict[str, Any]:
    auth = {"authorization": f"Bearer {client_token(running, subject)}"}
    async with httpx2.AsyncClient(timeout=30, headers=auth) as http:
        headers = await open_legacy_session(http, running.url)
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": TOOL, "arguments": {}}}
        return rpc_answer(await http.post(running.url, json=body, headers=headers))


async def modern_tool_call(running: Running, subject: str) -> dict[str, Any]:
    body, headers = modern_call("tools/call", {"name": TOOL, "arguments": {}})
    headers["authorization"] = f"Bearer {client_token(running, subject)}"
    async with httpx2.AsyncClient(timeout=30) as http:
        return rpc_answer(await http.post(running.url, content=body, headers=headers))


def connect_url(answer: dict[str, Any]) -> str:
    assert answer.get("error", {}).get("code") == -32042, answer
    (elicitation,) = answer["error"]["data"]["elicitations"]
    assert elicitation["mode"] == "url"
    assert elicitation["elicitationId"]
    assert "Protected Files" in elicitation["message"]
    return str(elicitation["url"])


def said(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    return str(answer["result"]["content"][0]["text"])


async def connect(running: Running, url: str, account: str) -> str:
    """Follow a connect link in the person's browser (signed in to Portico as the `gh-` account's owner):
    confirm, sign in at the upstream's AS; the final page's text."""
    async with signed_in_browser(running, account.removeprefix("gh-")) as browser:
        consent = await browser.open(url)
        assert consent.status == 200, consent.text
        at_as = await browser.submit(consent.form("ticket"), button="connect")
        assert at_as.status == 200, at_as.text
        done = await browser.submit(at_as.form("username"), {"username": account})
        return f"{done.status} {done.text}"


async def audit_records(running: Running, method_prefix: str = "upstream.") -> list[Any]:
    portico = running.portico
    assert portico.audit is not None
    assert portico.store is not None
    await portico.audit.flush()
    records = [record async for batch in reading.tail(portico.store, 500) for record in batch]
    return [r for r in records if r.method.startswith(method_prefix)]


def no_token_in(records: list[Any], *tokens: str | None) -> None:
    text = repr([(r.subject, r.reason, r.extra, r.target) for r in records])
    for token in tokens:
        assert not token or token not in text


async def stored_tokens(running: Running, subject: str) -> TokenSet:
    assert running.portico.vault is not None
    text = await running.portico.vault.get(f"user:{subject}:server:{SERVER}", TOKENS_NAME)
    return TokenSet.from_json(text)


# ---------------------------------------------------------------------------------------------- the flow


@pytest.mark.requirement("upstream-oauth:per-user-tokens")
async def test_a_user_connects_once_and_then_their_calls_carry_their_own_upstream_token(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        assert url.startswith(f"{running.base}/connect/{SERVER}?ticket=")
        page = await connect(running, url, "gh-alice")
        assert page.startswith("200")
        assert "is connected" in page
        tokens = await stored_tokens(running, "alice")
        assert tokens.refresh_token
        assert tokens.issuer == up.issuer
        assert tokens.resource == up.mcp_url

        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        assert said(await modern_tool_call(running, "alice")).startswith("gh-alice ")
        # What the upstream's AS was asked: PKCE S256 and `resource` exactly as the PRM publishes it.
        (authorize,) = up.authorize_requests
        assert authorize["code_challenge_method"] == "S256"
        assert authorize["resource"] == up.mcp_url
        assert authorize["scope"] == "files:read"
        assert all(r["resource"] == up.mcp_url for r in up.token_requests)
        # Never the client's token upstream: only Portico's catalog credential or alice's upstream token.
        alice_access = tokens.access_token
        assert set(up.seen) <= {"", f"Bearer {up.catalog_token}", f"Bearer {alice_access}"}
        assert not any("." in h.removeprefix("Bearer ") for h in up.seen)  # no JWT (Portico's tokens are JWTs)


@pytest.mark.requirement("upstream-oauth:no-cross-user-token")
async def test_another_user_is_asked_to_connect_and_never_gets_the_first_users_token(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        seen_before = len(up.seen)
        bob_url = connect_url(await legacy_call(running, "bob"))
        assert len(up.seen) == seen_before  # bob's call never reached the upstream
        ticket = parse_qs(urlsplit(bob_url).query)["ticket"][0]
        assert running.portico.vault is not None
        with pytest.raises(SecretNotFoundError):
            await running.portico.vault.get(f"user:bob:server:{SERVER}", TOKENS_NAME)
        assert ticket not in str(up.seen)
        await connect(running, bob_url, "gh-bob")
        assert said(await legacy_call(running, "bob")).startswith("gh-bob ")
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")


async def test_a_modern_client_is_asked_to_connect_with_an_input_required_url_elicitation(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        answer = await modern_tool_call(running, "alice")
        result = answer["result"]
        assert result["resultType"] == "input_required", answer
        (request,) = result["inputRequests"].values()
        assert request["method"] == "elicitation/create"
        assert request["params"]["mode"] == "url"
        assert request["params"]["url"].startswith(f"{running.base}/connect/{SERVER}?ticket=")


# -------------------------------------------------------------------------------------------- refreshing


@pytest.mark.requirement("upstream-oauth:refresh")
async def test_an_expired_access_token_is_refreshed_transparently_and_the_refresh_token_rotated(
    tmp_path: Path,
) -> None:
    async with ProtectedUpstream(access_ttl_s=5).serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        first = await stored_tokens(running, "alice")
        # expires_in 5 s is inside Portico's 30 s refresh skew: the next call refreshes before using it.
        answer = said(await legacy_call(running, "alice"))
        second = await stored_tokens(running, "alice")
        assert answer.startswith("gh-alice ")
        assert second.access_token != first.access_token
        assert second.refresh_token != first.refresh_token
        assert first.refresh_token in up.spent_refresh
        assert [r["grant_type"] for r in up.token_requests] == ["authorization_code", "refresh_token"]
        assert f"Bearer {first.access_token}" not in up.seen  # refreshed before use, not after a 401


async def test_an_access_token_the_upstream_refuses_is_refreshed_once_and_the_call_retried(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        up.revoke_access()
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        assert [r["grant_type"] for r in up.token_requests].count("refresh_token") == 1


async def test_concurrent_calls_after_a_revoked_token_refresh_it_only_once(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        up.revoke_access()
        answers: list[str] = []

        async def one() -> None:
            answers.append(said(await modern_tool_call(running, "alice")))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(one)
        assert len(answers) == 4
        assert all(a.startswith("gh-alice ") for a in answers)
        assert [r["grant_type"] for r in up.token_requests].count("refresh_token") == 1


@pytest.mark.requirement("upstream-oauth:refresh-failure-reconnects")
async def test_a_refused_refresh_asks_the_user_to_connect_again(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        up.revoke_access()
        up.revoke_refresh()
        connect_url(await legacy_call(running, "alice"))
        assert running.portico.vault is not None
        with pytest.raises(SecretNotFoundError):
            await running.portico.vault.get(f"user:alice:server:{SERVER}", TOKENS_NAME)
        (refused,) = [r for r in await audit_records(running) if r.method == "upstream.token_refresh"]
        assert (refused.subject, refused.server_id, refused.outcome) == ("alice", SERVER, "denied")
        assert refused.reason == "refresh_refused"
        assert refused.extra == {"status": 400, "as_error": "invalid_grant"}


# ------------------------------------------------------------------------------------------ the browser


def wired(running: Running) -> ConnectApp:
    assert running.portico.connect is not None
    return running.portico.connect


@pytest.mark.requirement("upstream-oauth:ticket")
async def test_tampered_expired_and_replayed_connect_tickets_are_refused(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        ticket = parse_qs(urlsplit(url).query)["ticket"][0]
        base = f"{running.base}/connect/{SERVER}?ticket="
        _payload, _, mac = ticket.partition(".")
        forged_payload = json.dumps({"s": "mallory", "v": SERVER, "e": 4e9, "n": "x", "sc": []}).encode()
        forged = base64.urlsafe_b64encode(forged_payload).rstrip(b"=").decode() + "." + mac
        keys = wired(running).client.keys
        expired = keys.mint("alice", SERVER, now=0, ttl_s=60)
        other_server = keys.mint("alice", "elsewhere", now=4e9, ttl_s=60)
        async with httpx2.AsyncClient(timeout=30) as http:
            for bad in (forged, ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"), expired, other_server, ""):
                page = await http.get(base + quote(bad, safe=""))
                assert page.status_code == 400, bad
                assert "<form" not in page.text
        async with signed_in_browser(running, "alice") as browser:
            consent = await browser.open(url)
            form = consent.form("ticket")
            first = await browser.submit(form, button="connect")
            assert first.status == 200
            assert first.form("username")
            replay = await browser.submit(form, button="connect")
            assert replay.status == 400


async def test_the_consent_form_needs_its_csrf_token_and_cookie(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        async with signed_in_browser(running, "alice") as browser:
            consent = await browser.open(url)
            assert consent.status == 200
            assert "alice" in consent.text
            assert up.issuer in consent.text
            assert "files:read" in consent.text
            form = consent.form("ticket")
            # A cross-site post: right ticket, no cookie of this browser.
            async with httpx2.AsyncClient(timeout=30) as other:
                page = await other.post(form.action, data={**form.fields, "action": "connect"})
                assert page.status_code == 400
                assert "location" not in page.headers
            forged = await browser.submit(form, {"csrf": "x" * 43}, button="connect")
            assert forged.status == 400
        assert up.authorize_requests == []


@pytest.mark.requirement("upstream-oauth:link-bound-to-signed-in-user")
async def test_a_connect_link_works_only_in_a_browser_signed_in_as_its_user(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        alices_link = connect_url(await legacy_call(running, "alice"))
        async with httpx2.AsyncClient(timeout=30) as nobody:
            anonymous = await nobody.get(alices_link)
        async with signed_in_browser(running, "bob") as bobs_browser:
            as_bob = await bobs_browser.open(alices_link)
        assert anonymous.status_code == 400
        assert as_bob.status == 400
        assert "Sign in to Portico as alice" in as_bob.text
        assert not as_bob.forms
        assert up.authorize_requests == []


@pytest.mark.requirement("upstream-oauth:state")
async def test_a_callback_whose_state_does_not_match_the_flow_is_refused(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        callback = f"{running.base}/connect/{SERVER}/callback"
        async with signed_in_browser(running, "alice", callback) as browser:
            consent = await browser.open(url)
            at_as = await browser.submit(consent.form("ticket"), button="connect")
            done = await browser.submit(at_as.form("username"), {"username": "gh-alice"})
            params = done.callback_params
            wrong = [
                {"code": params["code"], "state": "not-the-state", "iss": up.issuer},
                {"code": params["code"], "iss": up.issuer},
                {"code": params["code"], "state": params["state"], "iss": "http://127.0.0.1:1/other"},
            ]
            for query in wrong:
                page = await browser.http.get(callback, params=query)
                assert page.status_code == 400, query
            good = await browser.http.get(callback, params=params)
            assert good.status_code == 200, good.text
        # A callback in a browser that never started the flow.
        async with httpx2.AsyncClient(timeout=30) as stranger:
            page = await stranger.get(callback, params=params)
            assert page.status_code == 400


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.requirement("upstream-oauth:pkce-s256")
async def test_an_upstream_authorization_server_without_s256_is_refused(tmp_path: Path) -> None:
    async with ProtectedUpstream(s256=False).serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        async with signed_in_browser(running, "alice") as browser:
            page = await browser.http.get(url)
        assert page.status_code == 502
        assert "<form" not in page.text
        assert up.authorize_requests == []
        assert up.clients == {}


@pytest.mark.requirement("upstream-oauth:ssrf")
@pytest.mark.parametrize(
    "authorization_server",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://169.254.169.254/",
        "http://[fe80::1]/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://example.com/as",  # http to a non-loopback host
    ],
)
async def test_metadata_that_points_at_unsafe_urls_is_refused(tmp_path: Path, authorization_server: str) -> None:
    upstream = ProtectedUpstream(prm_extra={"authorization_servers": [authorization_server]})
    async with upstream.serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        async with signed_in_browser(running, "alice") as browser:
            page = await browser.http.get(url)
        assert page.status_code == 502
        assert "<form" not in page.text


# ------------------------------------------------------------------------------------------------- audit


@pytest.mark.requirement("upstream-oauth:connect-audited")
async def test_connecting_is_audited_with_subject_server_and_reason_and_never_a_token(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        tokens = await stored_tokens(running, "alice")
        records = await audit_records(running)
        (connected,) = [r for r in records if r.method == "upstream.connect"]
        assert (connected.subject, connected.server_id, connected.outcome) == ("alice", SERVER, "ok")
        assert (connected.reason, connected.decision, connected.authenticated_by) == ("connected", "allow", "session")
        assert connected.extra == {"issuer": up.issuer, "scope": "files:read"}
        no_token_in(records, tokens.access_token, tokens.refresh_token, up.catalog_token)


async def test_refused_links_cancelled_and_as_refused_connects_are_audited_as_denied(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        alices_link = connect_url(await legacy_call(running, "alice"))
        async with signed_in_browser(running, "bob") as bobs_browser:
            assert (await bobs_browser.open(alices_link)).status == 400
        async with httpx2.AsyncClient(timeout=30) as http:
            assert (await http.get(f"{running.base}/connect/{SERVER}?ticket=forged")).status_code == 400
        async with signed_in_browser(running, "alice") as browser:
            consent = await browser.open(alices_link)
            assert (await browser.submit(consent.form("ticket"), button="cancel")).status == 200
        callback = f"{running.base}/connect/{SERVER}/callback"
        async with signed_in_browser(running, "alice", callback) as browser:
            consent = await browser.open(connect_url(await legacy_call(running, "alice")))
            at_as = await browser.submit(consent.form("ticket"), button="connect")
            refused = (await browser.submit(at_as.form("username"), {"username": "gh-alice"})).callback_params
            refused = {"state": refused["state"], "iss": up.issuer, "error": "access_denied"}
            assert (await browser.http.get(callback, params=refused)).status_code == 400
        records = [r for r in await audit_records(running) if r.method == "upstream.connect"]
        seen = [(r.subject, r.outcome, r.reason, r.server_id) for r in records]
        assert seen == [
            ("alice", "denied", "signed_in_as_another_user", SERVER),
            ("anonymous", "denied", "ticket_invalid", SERVER),
            ("alice", "denied", "cancelled", SERVER),
            ("alice", "denied", "as_error", SERVER),
        ]
        assert records[-1].extra == {"as_error": "access_denied"}
        assert all(r.decision == "deny" for r in records)


async def test_an_upstream_authorization_failure_is_audited_as_an_error(tmp_path: Path) -> None:
    async with ProtectedUpstream(s256=False).serving() as up, gateway(tmp_path, up) as running:
        url = connect_url(await legacy_call(running, "alice"))
        async with signed_in_browser(running, "alice") as browser:
            assert (await browser.http.get(url)).status_code == 502
        (failed,) = [r for r in await audit_records(running) if r.method == "upstream.connect"]
        assert (failed.subject, failed.outcome, failed.reason) == ("alice", "error", "upstream_auth_failed")
        assert failed.decision is None


# -------------------------------------------------------------------------------------------- disconnect


@pytest.mark.requirement("upstream-oauth:disconnect")
async def test_a_user_disconnects_in_their_signed_in_browser_and_is_asked_to_connect_again(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        await connect(running, connect_url(await legacy_call(running, "bob")), "gh-bob")
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        assert said(await legacy_call(running, "bob")).startswith("gh-bob ")
        upstream = running.portico.pool.get(SERVER)
        assert isinstance(upstream, OAuthUpstream)
        assert upstream.user_connections == 2
        async with signed_in_browser(running, "alice") as browser:
            page = await browser.open(f"{running.base}/connect/{SERVER}/disconnect")
            assert page.status == 200, page.text
            assert "alice" in page.text
            done = await browser.submit(page.form("csrf"), button="disconnect")
            assert done.status == 200, done.text
            assert "is disconnected" in done.text
            again = await browser.open(f"{running.base}/connect/{SERVER}/disconnect")
            assert "not connected" in again.text
            assert not again.forms
        assert running.portico.vault is not None
        with pytest.raises(SecretNotFoundError):
            await running.portico.vault.get(f"user:alice:server:{SERVER}", TOKENS_NAME)
        assert upstream.user_connections == 1  # alice's connection closed at once; bob's kept
        connect_url(await legacy_call(running, "alice"))
        assert said(await legacy_call(running, "bob")).startswith("gh-bob ")
        (record,) = [r for r in await audit_records(running) if r.method == "upstream.disconnect"]
        assert (record.subject, record.server_id, record.outcome, record.reason) == ("alice", SERVER, "ok", "user")


@pytest.mark.requirement("upstream-oauth:disconnect-csrf")
async def test_disconnecting_needs_a_signed_in_browser_and_the_forms_csrf_token(tmp_path: Path) -> None:
    async with ProtectedUpstream().serving() as up, gateway(tmp_path, up) as running:
        await connect(running, connect_url(await legacy_call(running, "alice")), "gh-alice")
        url = f"{running.base}/connect/{SERVER}/disconnect"
        async with httpx2.AsyncClient(timeout=30) as nobody:
            anonymous = await nobody.get(url)
            assert anonymous.status_code == 400
            assert "<form" not in anonymous.text
            assert (await nobody.post(url, data={"csrf": "x"})).status_code == 400
        async with signed_in_browser(running, "alice") as browser:
            form = (await browser.open(url)).form("csrf")
            # A cross-site post from a page alice visits: her session cookie may ride along, her CSRF cookie's
            # value is unknown to the attacker; the token of another browser does not fit hers.
            async with signed_in_browser(running, "alice") as other:
                other_form = (await other.open(url)).form("csrf")
            assert (await browser.submit(form, {"csrf": other_form.fields["csrf"]})).status == 400
            assert (await browser.submit(form, {"csrf": "x" * 43})).status == 400
        async with signed_in_browser(running, "bob") as bobs_browser:
            page = await bobs_browser.open(url)
            assert "not connected for bob" in page.text
            assert (await bobs_browser.submit(form)).status == 400  # alice's token is bound to alice
        assert (await stored_tokens(running, "alice")).access_token
        assert said(await legacy_call(running, "alice")).startswith("gh-alice ")
        refusals = [(r.subject, r.outcome, r.reason) for r in await audit_records(running, "upstream.disconnect")]
        assert refusals == [
            ("anonymous", "denied", "not_signed_in"),
            ("anonymous", "denied", "not_signed_in"),
            ("alice", "denied", "csrf"),
            ("alice", "denied", "csrf"),
            ("bob", "denied", "csrf"),
        ]


# ------------------------------------------------------------------------------------------- the catalog


@pytest.mark.requirement("upstream-oauth:catalog-service-only")
def test_the_first_user_catalog_mode_is_not_accepted(tmp_path: Path) -> None:
    server = {"id": SERVER, "url": "http://127.0.0.1:9/mcp", "oauth": {"catalog": "first-user"}}
    with pytest.raises((ConfigError, ValueError)):
        make_settings(tmp_path, [server])


async def test_an_upstream_that_needs_authorization_to_list_says_to_set_a_catalog_credential(tmp_path: Path) -> None:
    async with (
        ProtectedUpstream().serving() as up,
        gateway(tmp_path, up, listed=False, catalog_credential=None) as running,
    ):
        upstream = running.portico.pool.get(SERVER)
        await eventually(lambda: "catalog_credential" in (upstream.health.last_error or ""), 30)
        assert "requires authorization to list" in (upstream.health.last_error or "")
        assert running.portico.catalog.resolve("tools", None, TOOL) is None
        assert set(up.seen) == {""}  # nothing but anonymous listing attempts: never a user's token
