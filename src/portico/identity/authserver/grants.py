"""The authorization server's state in the store: pending requests, codes, token families, refresh tokens,
revocations, login sessions and remembered consent. No HTTP here; `app` calls these.

Single use is enforced by the database, not by a read-then-write: redeeming a code or rotating a refresh token
is one `UPDATE … WHERE used_at IS NULL`, and only the statement that changed the row wins. A loser that finds
the row already used has detected a replay, and the whole family is revoked.

Every method may raise `OAuthError("server_error", status=500)` when the database fails (fail closed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.identity.authserver.model import OAuthError, PendingRequest, digest, timestamp
from portico.identity.authserver.tables import (
    oauth_access_tokens,
    oauth_codes,
    oauth_consents,
    oauth_families,
    oauth_refresh_tokens,
    oauth_requests,
    oauth_revoked_tokens,
    oauth_sessions,
)
from portico.identity.login import LoginIdentity
from portico.store.db import Store


def identity_json(identity: LoginIdentity) -> dict[str, Any]:
    return {
        "subject": identity.subject,
        "username": identity.username,
        "groups": sorted(identity.groups),
        "amr": list(identity.amr),
        "idp": identity.idp,
        "display_name": identity.display_name,
    }


def identity_from_json(value: dict[str, Any]) -> LoginIdentity:
    return LoginIdentity(
        subject=value["subject"],
        username=value["username"],
        groups=frozenset(value.get("groups", ())),
        amr=tuple(value.get("amr", ())),
        idp=value.get("idp", "local"),
        display_name=value.get("display_name"),
    )


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """A redeemed authorization code: everything the token endpoint checks and issues from."""

    family_id: str
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    resource: str
    code_challenge: str
    identity: LoginIdentity


@dataclass(frozen=True, slots=True)
class Family:
    """One authorization's refresh-token family."""

    id: str
    client_id: str
    scope: tuple[str, ...]
    resource: str
    identity: LoginIdentity
    expires_at: float


@dataclass(frozen=True, slots=True)
class Redeemed:
    """The outcome of presenting a single-use secret. `replayed` means it had been used: the family is revoked."""

    grant: CodeGrant | None = None
    family: Family | None = None
    scope: tuple[str, ...] = ()  # of the presented refresh token
    resource: str = ""
    replayed: bool = False


class GrantStore:
    """Reads and writes the `oauth_*` tables (except clients)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._store.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise OAuthError("server_error", "Temporarily unavailable", status=500, detail=str(exc)) from exc

    # ------------------------------------------------------------------------------------ pending requests

    async def save_request(self, req: PendingRequest, now: datetime, ttl_s: int) -> None:
        row = {
            "id": req.id,
            "browser_hash": req.browser_hash,
            "csrf": req.csrf,
            "client_id": req.client_id,
            "client_name": req.client_name,
            "redirect_uri": req.redirect_uri,
            "scope": " ".join(req.scope),
            "resource": req.resource,
            "state": req.state,
            "code_challenge": req.code_challenge,
            "step": req.step,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        async with self._tx() as conn:
            await conn.execute(insert(oauth_requests).values(row))

    async def get_request(self, request_id: str, now: datetime) -> PendingRequest | None:
        if not request_id or len(request_id) > 64:
            return None
        async with self._tx() as conn:
            query = select(oauth_requests).where(oauth_requests.c.id == request_id, oauth_requests.c.expires_at > now)
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return PendingRequest(
            id=row.id,
            browser_hash=row.browser_hash,
            csrf=row.csrf,
            client_id=row.client_id,
            client_name=row.client_name,
            redirect_uri=row.redirect_uri,
            scope=tuple(s for s in row.scope.split(" ") if s),
            resource=row.resource,
            state=row.state,
            code_challenge=row.code_challenge,
            step=row.step,
            username=row.username,
            identity=identity_from_json(row.identity) if row.identity else None,
            sealed_password=row.sealed_password,
        )

    async def advance_request(
        self,
        request_id: str,
        step: str,
        *,
        username: str | None = None,
        identity: LoginIdentity | None = None,
        sealed_password: bytes | None = None,
    ) -> None:
        """Move the request to `step`; fields not given are cleared (the sealed password never outlives its step)."""
        values: dict[str, Any] = {"step": step, "username": username, "sealed_password": sealed_password}
        values["identity"] = identity_json(identity) if identity is not None else None
        async with self._tx() as conn:
            await conn.execute(update(oauth_requests).where(oauth_requests.c.id == request_id).values(values))

    async def take_request(self, request_id: str) -> bool:
        """Delete the request; True only for the caller that deleted it (so a double submit issues one code)."""
        async with self._tx() as conn:
            result = await conn.execute(delete(oauth_requests).where(oauth_requests.c.id == request_id))
        return bool(result.rowcount)

    # ------------------------------------------------------------------------------------ codes

    async def save_code(
        self, code: str, family_id: str, req: PendingRequest, identity: LoginIdentity, expires_at: datetime
    ) -> None:
        row = {
            "code_hash": digest(code),
            "family_id": family_id,
            "client_id": req.client_id,
            "redirect_uri": req.redirect_uri,
            "scope": " ".join(req.scope),
            "resource": req.resource,
            "code_challenge": req.code_challenge,
            "identity": identity_json(identity),
            "expires_at": expires_at,
        }
        async with self._tx() as conn:
            await conn.execute(insert(oauth_codes).values(row))

    async def redeem_code(self, code: str, now: datetime) -> Redeemed:
        """Mark the code used. A code already used: its family (tokens issued from it) is revoked, `replayed`.

        An unknown or expired code gives an empty `Redeemed`.
        """
        code_hash = digest(code)
        async with self._tx() as conn:
            marked = await conn.execute(
                update(oauth_codes)
                .where(oauth_codes.c.code_hash == code_hash, oauth_codes.c.used_at.is_(None))
                .values(used_at=now)
            )
            row = (await conn.execute(select(oauth_codes).where(oauth_codes.c.code_hash == code_hash))).first()
            if row is None:
                return Redeemed()
            if not marked.rowcount:
                await self._revoke_family(conn, row.family_id, now)
                return Redeemed(replayed=True)
            if timestamp(row.expires_at) <= now.timestamp():
                return Redeemed()
        grant = CodeGrant(
            family_id=row.family_id,
            client_id=row.client_id,
            redirect_uri=row.redirect_uri,
            scope=tuple(s for s in row.scope.split(" ") if s),
            resource=row.resource,
            code_challenge=row.code_challenge,
            identity=identity_from_json(row.identity),
        )
        return Redeemed(grant=grant)

    # ------------------------------------------------------------------------------------ families, tokens

    async def start_family(self, grant: CodeGrant, now: datetime, expires_at: datetime) -> None:
        row = {
            "id": grant.family_id,
            "client_id": grant.client_id,
            "subject": grant.identity.subject,
            "scope": " ".join(grant.scope),
            "resource": grant.resource,
            "identity": identity_json(grant.identity),
            "created_at": now,
            "expires_at": expires_at,
        }
        async with self._tx() as conn:
            await conn.execute(insert(oauth_families).values(row))

    async def issued(
        self,
        family_id: str,
        jti: str,
        access_expires_at: datetime,
        refresh: str | None,
        scope: Iterable[str],
        resource: str,
        now: datetime,
        refresh_expires_at: datetime,
    ) -> bool:
        """Record an access token (and the family's new refresh token). False when the family was revoked meanwhile
        (a replay raced this issuance): the caller must not hand the tokens out."""
        async with self._tx() as conn:
            await conn.execute(
                insert(oauth_access_tokens).values(jti=jti, family_id=family_id, expires_at=access_expires_at)
            )
            if refresh is not None:
                await conn.execute(
                    insert(oauth_refresh_tokens).values(
                        token_hash=digest(refresh),
                        family_id=family_id,
                        scope=" ".join(scope),
                        resource=resource,
                        created_at=now,
                        expires_at=refresh_expires_at,
                    )
                )
            family = select(oauth_families.c.revoked_at).where(oauth_families.c.id == family_id)
            revoked = (await conn.execute(family)).scalar_one_or_none()
            if revoked is not None:
                await self._revoke_family(conn, family_id, now)
                return False
        return True

    async def rotate_refresh(self, token: str, now: datetime) -> Redeemed:
        """Mark a refresh token used. Already used: reuse, the family is revoked (`replayed`). Unknown,
        expired (idle or absolute) or revoked: an empty `Redeemed`."""
        token_hash = digest(token)
        async with self._tx() as conn:
            marked = await conn.execute(
                update(oauth_refresh_tokens)
                .where(oauth_refresh_tokens.c.token_hash == token_hash, oauth_refresh_tokens.c.used_at.is_(None))
                .values(used_at=now)
            )
            query = select(oauth_refresh_tokens).where(oauth_refresh_tokens.c.token_hash == token_hash)
            row = (await conn.execute(query)).first()
            if row is None:
                return Redeemed()
            if not marked.rowcount:
                await self._revoke_family(conn, row.family_id, now)
                return Redeemed(replayed=True)
            fam = (await conn.execute(select(oauth_families).where(oauth_families.c.id == row.family_id))).first()
        if fam is None or fam.revoked_at is not None:
            return Redeemed()
        if timestamp(row.expires_at) <= now.timestamp() or timestamp(fam.expires_at) <= now.timestamp():
            return Redeemed()
        family = Family(
            id=fam.id,
            client_id=fam.client_id,
            scope=tuple(s for s in fam.scope.split(" ") if s),
            resource=fam.resource,
            identity=identity_from_json(fam.identity),
            expires_at=timestamp(fam.expires_at),
        )
        return Redeemed(family=family, scope=tuple(s for s in row.scope.split(" ") if s), resource=row.resource)

    async def family_of_refresh(self, token: str) -> tuple[str, str] | None:
        """(family id, client id) of a refresh token, used or not."""
        query = (
            select(oauth_families.c.id, oauth_families.c.client_id)
            .join(oauth_refresh_tokens, oauth_refresh_tokens.c.family_id == oauth_families.c.id)
            .where(oauth_refresh_tokens.c.token_hash == digest(token))
        )
        async with self._tx() as conn:
            row = (await conn.execute(query)).first()
        return (row.id, row.client_id) if row is not None else None

    async def revoke_family(self, family_id: str, now: datetime) -> list[str]:
        """Revoke a family: its refresh tokens stop working and its live access tokens are revoked (returned)."""
        async with self._tx() as conn:
            return await self._revoke_family(conn, family_id, now)

    async def _revoke_family(self, conn: AsyncConnection, family_id: str, now: datetime) -> list[str]:
        await conn.execute(
            update(oauth_families)
            .where(oauth_families.c.id == family_id, oauth_families.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await conn.execute(
            update(oauth_refresh_tokens)
            .where(oauth_refresh_tokens.c.family_id == family_id, oauth_refresh_tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        live = select(oauth_access_tokens.c.jti, oauth_access_tokens.c.expires_at).where(
            oauth_access_tokens.c.family_id == family_id, oauth_access_tokens.c.expires_at > now
        )
        rows = (await conn.execute(live)).all()
        for row in rows:
            await self._record_revocation(conn, row.jti, row.expires_at, now)
        return [row.jti for row in rows]

    async def revoke_subject(self, subject: str, now: datetime) -> list[str]:
        """Revoke every live grant of a person (all their clients): refresh tokens stop working, live access
        tokens are revoked (returned). Running Portico processes pick the revocations up within their poll."""
        async with self._tx() as conn:
            families = select(oauth_families.c.id).where(
                oauth_families.c.subject == subject, oauth_families.c.revoked_at.is_(None)
            )
            revoked: list[str] = []
            for family_id in (await conn.execute(families)).scalars().all():
                revoked += await self._revoke_family(conn, family_id, now)
            return revoked

    async def revoke_access(self, jti: str, expires_at: datetime, now: datetime) -> None:
        async with self._tx() as conn:
            await self._record_revocation(conn, jti, expires_at, now)

    async def _record_revocation(self, conn: AsyncConnection, jti: str, expires_at: datetime, now: datetime) -> None:
        statement = self._insert(oauth_revoked_tokens).values(jti=jti, expires_at=expires_at, revoked_at=now)
        await conn.execute(statement.on_conflict_do_nothing())

    async def revoked_since(self, since: datetime | None, now: datetime) -> list[tuple[str, float]]:
        """(jti, exp) of every unexpired revocation recorded at or after `since` (all of them when None)."""
        query = select(oauth_revoked_tokens.c.jti, oauth_revoked_tokens.c.expires_at).where(
            oauth_revoked_tokens.c.expires_at > now
        )
        if since is not None:
            query = query.where(oauth_revoked_tokens.c.revoked_at >= since)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.jti, timestamp(row.expires_at)) for row in rows]

    # ------------------------------------------------------------------------------------ login sessions

    async def create_session(self, session_id: str, identity: LoginIdentity, now: datetime, ttl_s: int) -> None:
        row = {
            "id_hash": digest(session_id),
            "identity": identity_json(identity),
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        async with self._tx() as conn:
            await conn.execute(insert(oauth_sessions).values(row))

    async def session(self, session_id: str, now: datetime, idle_s: int) -> LoginIdentity | None:
        """The identity of a live session (touching it), or None when unknown, idle too long or past its end."""
        if not session_id or len(session_id) > 128:
            return None
        id_hash = digest(session_id)
        async with self._tx() as conn:
            touched = await conn.execute(
                update(oauth_sessions)
                .where(
                    oauth_sessions.c.id_hash == id_hash,
                    oauth_sessions.c.expires_at > now,
                    oauth_sessions.c.last_seen_at > now - timedelta(seconds=idle_s),
                )
                .values(last_seen_at=now)
            )
            if not touched.rowcount:
                return None
            row = (await conn.execute(select(oauth_sessions).where(oauth_sessions.c.id_hash == id_hash))).first()
        return identity_from_json(row.identity) if row is not None else None

    async def end_session(self, session_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(delete(oauth_sessions).where(oauth_sessions.c.id_hash == digest(session_id)))

    # ------------------------------------------------------------------------------------ consent

    @staticmethod
    def _consent_key(subject: str, client_id: str, resource: str, scope: Iterable[str]) -> str:
        return digest("\x00".join([subject, client_id, resource, " ".join(sorted(scope))]))

    async def remember_consent(
        self, subject: str, client_id: str, resource: str, scope: Iterable[str], now: datetime
    ) -> None:
        key = self._consent_key(subject, client_id, resource, scope)
        statement = self._insert(oauth_consents).values(
            key_hash=key, subject=subject, client_id=client_id, created_at=now
        )
        async with self._tx() as conn:
            await conn.execute(statement.on_conflict_do_nothing())

    async def has_consent(self, subject: str, client_id: str, resource: str, scope: Iterable[str]) -> bool:
        key = self._consent_key(subject, client_id, resource, scope)
        async with self._tx() as conn:
            row = (
                await conn.execute(select(oauth_consents.c.key_hash).where(oauth_consents.c.key_hash == key))
            ).first()
        return row is not None

    # ------------------------------------------------------------------------------------ housekeeping

    async def purge(self, now: datetime, code_keep_s: int) -> None:
        """Delete what has expired. Used codes are kept `code_keep_s` past expiry so a late replay is still seen."""
        async with self._tx() as conn:
            await conn.execute(delete(oauth_requests).where(oauth_requests.c.expires_at <= now))
            await conn.execute(
                delete(oauth_codes).where(oauth_codes.c.expires_at <= now - timedelta(seconds=code_keep_s))
            )
            await conn.execute(delete(oauth_sessions).where(oauth_sessions.c.expires_at <= now))
            await conn.execute(delete(oauth_access_tokens).where(oauth_access_tokens.c.expires_at <= now))
            await conn.execute(delete(oauth_revoked_tokens).where(oauth_revoked_tokens.c.expires_at <= now))
            ended = select(oauth_families.c.id).where(
                or_(oauth_families.c.expires_at <= now, oauth_families.c.revoked_at.is_not(None))
            )
            await conn.execute(
                delete(oauth_refresh_tokens).where(
                    or_(oauth_refresh_tokens.c.expires_at <= now, oauth_refresh_tokens.c.family_id.in_(ended))
                )
            )
            await conn.execute(delete(oauth_families).where(oauth_families.c.expires_at <= now))
