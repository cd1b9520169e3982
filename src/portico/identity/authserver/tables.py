"""The embedded authorization server's state, on the shared `MetaData` (`portico.store.tables`).

Every secret a browser or client holds (authorization codes, refresh tokens, login-session ids, the browser
binding cookie, client secrets) is stored only as its SHA-256 (`*_hash`, hex): a copy of the database grants
nothing. Times are UTC.

* `oauth_clients`: clients registered dynamically (RFC 7591). Pre-registered clients live in the settings;
  Client ID Metadata Document clients are fetched, never stored.
* `oauth_requests`: pending authorization requests (what /oauth/authorize validated), plus the login step the
  browser has reached (`step`: `login` → `otp` once the password held for a TOTP user → `consent`).
* `oauth_codes`: authorization codes; `used_at` set on first redemption. `family_id` is fixed when the code is
  made, so replaying a used code can revoke whatever was issued from it.
* `oauth_families`: one per authorization (code redemption): who, for which client, resource and scopes, its
  absolute expiry and `revoked_at`.
* `oauth_refresh_tokens`: the family's refresh tokens; the newest has `used_at` NULL (rotation).
* `oauth_access_tokens`: the `jti` of every access token issued from a family, so revoking the family can
  revoke them until they expire.
* `oauth_revoked_tokens`: revoked access-token ids until their `exp`; every replica reloads this set.
* `oauth_sessions`: browser login sessions (idle and absolute expiry).
* `oauth_consents`: remembered consent, keyed by a digest of (subject, client id, resource, scopes).

Migration `0004_oauth` creates these tables.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, LargeBinary, String, Table, Text

from portico.store.tables import Json, metadata

HASH = String(64)  # SHA-256, hex
_TS = DateTime(timezone=True)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", HASH),
    Column("client_name", Text),
    Column("token_endpoint_auth_method", String(32), nullable=False),
    Column("redirect_uris", Json, nullable=False),
    Column("grant_types", Json, nullable=False),
    Column("scope", Text),
    Column("registration", Json, nullable=False),  # the accepted metadata, echoed back to the client
    Column("created_at", _TS, nullable=False),
)

oauth_requests = Table(
    "oauth_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("browser_hash", HASH, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("client_id", Text, nullable=False),
    Column("client_name", Text),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("state", Text),
    Column("code_challenge", String(128), nullable=False),
    Column("step", String(16), nullable=False),
    Column("username", Text),
    Column("sealed_password", LargeBinary),  # otp step only; key derived from the browser cookie
    Column("identity", Json),  # the signed-in LoginIdentity once `step` is consent
    Column("created_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Index(None, "expires_at"),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", HASH, primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("client_id", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("identity", Json, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Column("used_at", _TS),
    Index(None, "expires_at"),
)

oauth_families = Table(
    "oauth_families",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("identity", Json, nullable=False),
    Column("created_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Column("revoked_at", _TS),
    Index(None, "expires_at"),
)

oauth_refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("token_hash", HASH, primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("created_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Column("used_at", _TS),
    Index(None, "family_id"),
    Index(None, "expires_at"),
)

oauth_access_tokens = Table(
    "oauth_access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("expires_at", _TS, nullable=False),
    Index(None, "family_id"),
    Index(None, "expires_at"),
)

oauth_revoked_tokens = Table(
    "oauth_revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", _TS, nullable=False),
    Column("revoked_at", _TS, nullable=False),
    Index(None, "revoked_at"),
    Index(None, "expires_at"),
)

oauth_sessions = Table(
    "oauth_sessions",
    metadata,
    Column("id_hash", HASH, primary_key=True),
    Column("identity", Json, nullable=False),
    Column("created_at", _TS, nullable=False),
    Column("last_seen_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Index(None, "expires_at"),
)

oauth_consents = Table(
    "oauth_consents",
    metadata,
    Column("key_hash", HASH, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("created_at", _TS, nullable=False),
)
