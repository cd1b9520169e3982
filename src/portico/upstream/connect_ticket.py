"""The two secrets that cross the browser in a connect flow. Pure functions over keys and a clock reading.

A **ticket** is the user's authority for one connection: Portico hands it to the MCP client inside the connect
link (`/connect/<server>?ticket=…`) when a call needs the user's upstream token. Browsers do not carry the
client's access token, so the ticket binds the subject and the server instead, signed and short-lived:

    ticket = base64url(json{s: subject, v: server id, e: expires at, n: nonce, sc: extra scopes})
             "." base64url(HMAC-SHA256(K_ticket, "portico-connect-ticket/1" 0x00 payload))

Single use: `TicketLedger` remembers spent nonces until they expire (per process; see Limits in the report).

The **state** of a flow in flight (PKCE verifier, subject, issuer, client id) travels in a sealed cookie, like
the SSO sign-in state: AES-256-GCM under K_state, the associated data binding the server and the `state`
query parameter, so the cookie opens only on the callback of the flow it was made for.

Both keys are derived (HKDF-SHA256) from one master key, Portico's current vault key, so replicas agree and a
vault key rotation also retires every ticket and flow in flight.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from portico.errors import PorticoError
from portico.store.db import Store, StoreError
from portico.upstream.connect_tables import connect_tickets

_TICKET_INFO = b"portico-connect-ticket/1"
_STATE_INFO = b"portico-connect-state/1"
_CSRF_INFO = b"portico-connect-csrf/1"
_NONCE_BYTES = 12
MAX_TICKET_CHARS = 2048


class ConnectError(PorticoError):
    """A connect link or flow state that does not hold: tampered, expired, replayed, or another flow's.
    `public` is safe to show on the page; it never says which check failed in a way that helps forging."""

    default_public = "This connect link is invalid or has expired. Ask your client for a new one."

    def __init__(self, public: str | None = None, *, reason: str, detail: str | None = None) -> None:
        super().__init__(public, detail=detail)
        self.reason = reason  # a short code for the audit log (`ticket_expired`, `csrf`, ...): never a secret


@dataclass(frozen=True, slots=True)
class Ticket:
    subject: str
    server_id: str
    expires_at: float
    nonce: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingConnect:
    """What Portico remembers about one connect flow between the redirect to the AS and the callback."""

    server_id: str
    state: str
    subject: str
    code_verifier: str = field(repr=False)
    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConnectKeys:
    """Signs tickets, seals flow state, and makes CSRF tokens, from one master key (≥ 32 bytes)."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("the connect master key must be at least 32 bytes")
        self._ticket = _derive(master, _TICKET_INFO)
        self._csrf = _derive(master, _CSRF_INFO)
        self._aead = AESGCM(_derive(master, _STATE_INFO))

    # -------------------------------------------------------------------------------------- tickets

    def mint(self, subject: str, server_id: str, now: float, ttl_s: float, scopes: tuple[str, ...] = ()) -> str:
        payload = orjson.dumps(
            {"s": subject, "v": server_id, "e": now + ttl_s, "n": secrets.token_urlsafe(16), "sc": list(scopes)}
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, ticket: str, server_id: str, now: float) -> Ticket:
        """The ticket's claims, if it is genuine, unexpired and made for `server_id` (not spent-checked).

        Raises:
            ConnectError: anything else.
        """
        try:
            if len(ticket) > MAX_TICKET_CHARS:
                raise ValueError("too long")
            payload_text, _, mac_text = ticket.partition(".")
            payload = _unb64(payload_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(payload)):
                raise ValueError("bad signature")
            data = orjson.loads(payload)
            claims = Ticket(
                str(data["s"]), str(data["v"]), float(data["e"]), str(data["n"]), tuple(str(s) for s in data["sc"])
            )
        except (ValueError, binascii.Error, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise ConnectError(reason="ticket_invalid", detail=f"ticket rejected: {type(exc).__name__}") from None
        if claims.server_id != server_id:
            raise ConnectError(reason="ticket_wrong_server", detail="ticket made for another server")
        if now >= claims.expires_at:
            raise ConnectError(reason="ticket_expired", detail="ticket expired")
        return claims

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._ticket, _TICKET_INFO + b"\x00" + payload, hashlib.sha256).digest()

    # ---------------------------------------------------------------------------------------- state

    def seal(self, pending: PendingConnect) -> str:
        payload = orjson.dumps(
            {
                "s": pending.subject,
                "cv": pending.code_verifier,
                "i": pending.issuer,
                "c": pending.client_id,
                "sc": list(pending.scopes),
                "e": pending.expires_at,
            }
        )
        nonce = os.urandom(_NONCE_BYTES)
        return _b64(nonce + self._aead.encrypt(nonce, payload, _aad(pending.server_id, pending.state)))

    def open(self, value: str, server_id: str, state: str, now: float) -> PendingConnect:
        """Raises:
        ConnectError: the cookie does not open for this server and state, or the flow expired.
        """
        try:
            raw = _unb64(value)
            if len(raw) <= _NONCE_BYTES:
                raise ValueError("too short")
            data = orjson.loads(self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(server_id, state)))
            pending = PendingConnect(
                server_id,
                state,
                str(data["s"]),
                str(data["cv"]),
                str(data["i"]),
                str(data["c"]),
                tuple(str(s) for s in data["sc"]),
                float(data["e"]),
            )
        except (InvalidTag, ValueError, binascii.Error, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise ConnectError(
                "This sign-in could not be completed: start again from your client.",
                reason="state_invalid",
                detail=f"state rejected: {type(exc).__name__}",
            ) from None
        if now >= pending.expires_at:
            raise ConnectError(
                "This sign-in took too long: start again from your client.",
                reason="state_expired",
                detail="state expired",
            )
        return pending

    # ----------------------------------------------------------------------------------------- csrf

    def csrf_token(self, browser_secret: str, ticket_nonce: str) -> str:
        """A form's CSRF token: bound to the browser's cookie and to what the form acts on (the consent form: the
        ticket's nonce; the disconnect form: `disconnect_nonce(server, subject)`)."""
        message = f"{browser_secret}\x00{ticket_nonce}".encode()
        return _b64(hmac.new(self._csrf, message, hashlib.sha256).digest())


def disconnect_nonce(server_id: str, subject: str) -> str:
    """What a disconnect form's CSRF token is bound to (ticket nonces are base64url: no clash)."""
    return f"disconnect\x00{server_id}\x00{subject}"


def _aad(server_id: str, state: str) -> bytes:
    return b"\x00".join((_STATE_INFO, server_id.encode(), state.encode()))


def state_cookie_name(state: str, secure: bool) -> str:
    """One cookie per flow in flight; `__Host-` when Portico is served over https."""
    return ("__Host-" if secure else "") + "portico_connect_" + hashlib.sha256(state.encode()).hexdigest()[:24]


def csrf_cookie_name(secure: bool) -> str:
    return ("__Host-" if secure else "") + "portico_connect_csrf"


class TicketLedger:
    """Spent ticket nonces in the store (`connect_tickets`): a ticket is single use across every process on it,
    remembered (as a hash) until the ticket would have expired anyway."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def spend(self, ticket: Ticket, now: float) -> None:
        """Raises:
        ConnectError: the ticket was already used (here or on another replica).
        StoreError: the database failed (the connect page answers an error: fail closed).
        """
        table = connect_tickets
        nonce_hash = hashlib.sha256(ticket.nonce.encode()).hexdigest()
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(delete(table).where(table.c.expires_at <= datetime.fromtimestamp(now, UTC)))
                expires = datetime.fromtimestamp(ticket.expires_at, UTC)
                await conn.execute(insert(table).values(nonce_hash=nonce_hash, expires_at=expires))
        except IntegrityError as exc:
            raise ConnectError(reason="ticket_replayed", detail="ticket replayed") from exc
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(detail=f"connect ticket ledger: {exc}") from exc
