"""Where clients come from, and RFC 7591 dynamic registration.

ClientRegistry.get(client_id)       -> Client | None   (configuration, then the database, then a metadata
                                                        document when the id is an https URL)
parse_registration(body, settings)  -> Client (pure; RFC 7591 §2 checks) or OAuthError
ClientRegistry.register(client)     -> persisted; the plaintext secret is returned once, never stored
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from portico.identity.authserver.cimd import MetadataFetcher, is_url_client_id
from portico.identity.authserver.model import (
    AUTH_METHODS,
    AuthMethod,
    Client,
    OAuthError,
    digest,
    new_secret,
    redirect_uri_problem,
)
from portico.identity.authserver.settings import SCOPE_TOKEN, AuthServerSettings, ClientSettings
from portico.identity.authserver.tables import oauth_clients
from portico.store.db import Store

MAX_CLIENT_NAME_CHARS = 100
_DCR_GRANTS = frozenset({"authorization_code", "refresh_token"})


def _bad_metadata(public: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", public)


def client_from_settings(settings: ClientSettings) -> Client:
    """A configured client; its secret is hashed here and the plaintext dropped."""
    return Client(
        client_id=settings.client_id,
        source="config",
        name=settings.name,
        redirect_uris=tuple(settings.redirect_uris),
        grant_types=frozenset(settings.grant_types),
        auth_method="client_secret_basic" if settings.secret else "none",
        secret_hash=digest(settings.secret) if settings.secret else None,
        scopes=frozenset(settings.scopes) if settings.scopes is not None else None,
        resources=frozenset(settings.resources) if settings.resources is not None else None,
        subject=settings.subject or settings.client_id,
        groups=frozenset(settings.groups),
    )


def parse_registration(body: Mapping[str, Any], settings: AuthServerSettings) -> tuple[Client, dict[str, Any]]:
    """Validate RFC 7591 client metadata; the client to create (without id or secret) and the metadata to echo.

    Only the authorization code grant (with refresh tokens) can be registered: client_credentials clients are
    configured by an administrator.

    Raises:
        OAuthError: invalid_redirect_uri or invalid_client_metadata.
    """
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise _bad_metadata("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
    grants = body.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not grants or not all(isinstance(g, str) for g in grants):
        raise _bad_metadata("grant_types must be a list of strings")
    if not set(grants) <= _DCR_GRANTS or "authorization_code" not in grants:
        raise _bad_metadata("grant_types must be authorization_code, optionally with refresh_token")
    responses = body.get("response_types", ["code"])
    if responses != ["code"]:
        raise _bad_metadata('response_types must be ["code"]')
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise OAuthError("invalid_redirect_uri", "redirect_uris is required")
    if len(uris) > settings.max_redirect_uris:
        raise OAuthError("invalid_redirect_uri", "too many redirect_uris")
    for uri in uris:
        problem = redirect_uri_problem(uri, settings.native_redirect_schemes)
        if problem is not None:
            raise OAuthError("invalid_redirect_uri", "a redirect URI is not allowed", detail=problem)
    name = body.get("client_name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_CLIENT_NAME_CHARS):
        raise _bad_metadata(f"client_name must be a string of 1-{MAX_CLIENT_NAME_CHARS} characters")
    if name is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise _bad_metadata("client_name must not contain control characters")
    scope = body.get("scope")
    scopes: frozenset[str] | None = None
    if scope is not None:
        if not isinstance(scope, str) or not all(SCOPE_TOKEN.fullmatch(s) for s in scope.split(" ")):
            raise _bad_metadata("scope must be a space-separated list of scope tokens")
        scopes = frozenset(scope.split(" ")) & frozenset(settings.scopes)
    echoed: dict[str, Any] = {
        "redirect_uris": list(uris),
        "token_endpoint_auth_method": method,
        "grant_types": list(dict.fromkeys(grants)),
        "response_types": ["code"],
    }
    if name is not None:
        echoed["client_name"] = name
    if scopes is not None:
        echoed["scope"] = " ".join(s for s in settings.scopes if s in scopes)
    for key in ("client_uri", "logo_uri", "software_id", "software_version"):  # informational, echoed
        value = body.get(key)
        if isinstance(value, str) and len(value) <= 200:
            echoed[key] = value
    client = Client(
        client_id="",
        source="dcr",
        name=name,
        redirect_uris=tuple(uris),
        grant_types=frozenset(grants),
        auth_method=cast(AuthMethod, method),
        scopes=scopes,
    )
    return client, echoed


class ClientRegistry:
    """Looks clients up by id in the configuration, the database and metadata documents."""

    def __init__(self, settings: AuthServerSettings, store: Store, fetcher: MetadataFetcher) -> None:
        self._settings = settings
        self._store = store
        self._fetcher = fetcher
        self._configured = {c.client_id: client_from_settings(c) for c in settings.clients}

    async def get(self, client_id: str) -> Client | None:
        """The client `client_id`, or None when there is no such client.

        Raises:
            OAuthError: invalid_client, when the id is a metadata-document URL that cannot be used.
        """
        if client_id in self._configured:
            return self._configured[client_id]
        if is_url_client_id(client_id):
            if not self._settings.client_id_metadata_documents:
                return None
            return await self._fetcher.client(client_id)
        if len(client_id) > 64:
            return None
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(oauth_clients).where(oauth_clients.c.client_id == client_id))).first()
        if row is None:
            return None
        return Client(
            client_id=row.client_id,
            source="dcr",
            name=row.client_name,
            redirect_uris=tuple(row.redirect_uris),
            grant_types=frozenset(row.grant_types),
            auth_method=row.token_endpoint_auth_method,
            secret_hash=row.secret_hash,
            scopes=frozenset(row.scope.split(" ")) if row.scope else None,
        )

    async def register(self, client: Client, echoed: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Persist a dynamically registered client; the RFC 7591 §3.2.1 response (with the secret, once).

        Raises:
            OAuthError: server_error when the database fails.
        """
        client_id = new_secret(16)
        secret = new_secret(32) if client.auth_method != "none" else None
        row = {
            "client_id": client_id,
            "secret_hash": digest(secret) if secret else None,
            "client_name": client.name,
            "token_endpoint_auth_method": client.auth_method,
            "redirect_uris": list(client.redirect_uris),
            "grant_types": sorted(client.grant_types),
            "scope": " ".join(sorted(client.scopes)) if client.scopes is not None else None,
            "registration": echoed,
            "created_at": now,
        }
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(oauth_clients).values(row))
        except (SQLAlchemyError, OSError) as exc:
            raise OAuthError("server_error", "Registration failed", status=500, detail=str(exc)) from exc
        response = {**echoed, "client_id": client_id, "client_id_issued_at": int(now.timestamp())}
        if secret is not None:
            response["client_secret"] = secret
            response["client_secret_expires_at"] = 0
        return response
