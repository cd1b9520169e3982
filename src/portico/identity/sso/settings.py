"""One external OpenID Connect identity provider people may sign in to Portico with (`identity.sso` is a list).

    - id: entra
      display_name: Contoso (Entra ID)
      issuer: https://login.microsoftonline.com/<tenant-id>/v2.0
      client_id: 6f1c…
      client_secret: ${vault:ENTRA_CLIENT_SECRET}
      subject_claim: oid
      groups_overage: fetch
      groups_endpoint: https://graph.microsoft.com/v1.0/me/transitiveMemberOf
      group_map: {"0b6e…": eng}

Secret references (`${env:…}`, `${vault:…}`) are resolved by the config loader before these models see them.
Plain `http` is accepted only for loopback hosts (test issuers); everything else must be https.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portico.netaddr import is_loopback_host

PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
# Parameters Portico sets itself; `extra_authorize_params` may not override them (PKCE, state and nonce are
# what make the round trip safe).
RESERVED_AUTHORIZE_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
     "code_challenge_method", "resource", "acr_values", "response_mode", "request", "request_uri"}
)  # fmt: skip


def check_url(value: str, what: str = "URL") -> str:
    """`value` if it is an absolute https URL (http on loopback), without fragment.

    Raises:
        ValueError: it is not.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{what} must be https unless its host is loopback")
    if parts.fragment or "#" in value:
        raise ValueError(f"{what} must have no fragment")
    return value


def _default_scopes() -> list[str]:
    return ["openid", "profile", "email"]


class SsoProviderSettings(BaseModel):
    """An OIDC identity provider shown as a "Sign in with …" button on Portico's login page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        description="Short name used in URLs (`/login/sso/<id>`), in audit records and as the identity's `idp`: "
        "lowercase letters, digits, `-`, `_`; at most 40 characters. Changing it changes subjects (see "
        "`subject_prefix`)."
    )
    display_name: str = Field(description="Shown on the login page button: `Sign in with <display_name>`.")
    issuer: str = Field(
        description="The IdP's issuer URL. Its metadata is read from `<issuer>/.well-known/openid-configuration` "
        "and the `issuer` there must equal this value exactly (Entra ID: the tenant-specific "
        "`https://login.microsoftonline.com/<tenant-id>/v2.0`, not `common`)."
    )
    client_id: str = Field(description="The client id Portico is registered with at the IdP.")
    client_secret: str = Field(
        repr=False,
        description="The client secret (use a `${vault:…}` or `${env:…}` reference; never written in logs).",
    )
    scopes: list[str] = Field(
        default_factory=_default_scopes,
        description="Scopes requested; must include `openid`. Okta sends a `groups` claim only when `groups` is "
        "requested; Entra needs `User.Read` (or `GroupMember.Read.All`) for `groups_overage: fetch`.",
    )
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        "client_secret_basic", description="How the client secret is sent to the token endpoint."
    )
    subject_claim: str = Field(
        "sub",
        description="ID token claim holding the user's stable id (Entra: `oid` is the same across applications, "
        "`sub` is per application).",
    )
    subject_prefix: str | None = Field(
        None,
        description="Put before the IdP's subject to make Portico's subject. Default (unset): `<id>:`, so an IdP "
        'user never collides with a local user or another IdP\'s user. Set `""` only when this IdP is '
        "authoritative for the subjects it asserts.",
    )
    username_claim: str = Field(
        "preferred_username",
        description="Claim shown as the username on consent pages and in logs; falls back to `email`, then to "
        "the subject.",
    )
    groups_claim: str = Field(
        "groups",
        description="Claim holding the user's groups (a list of strings; Entra: group object ids, or app role "
        "values with `roles`).",
    )
    group_map: dict[str, str] = Field(
        default_factory=dict,
        description="IdP group value → Portico group. Several IdP groups may map to one Portico group.",
    )
    pass_unmapped_groups: bool = Field(
        False,
        description="Keep IdP groups that `group_map` does not name, as they are. Off: they are dropped, so an "
        "IdP group cannot take a Portico group's name by accident.",
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="If set, sign-in is refused unless the user is in at least one of these Portico groups "
        "(after mapping).",
    )
    groups_overage: Literal["deny", "ignore", "fetch"] = Field(
        "deny",
        description="When the IdP leaves groups out of the ID token because there are too many (Entra: "
        "`_claim_names`/`_claim_sources` or `hasgroups`): `deny` refuses sign-in, `ignore` signs in without "
        "groups, `fetch` reads them from `groups_endpoint` (or the token's `_claim_sources` endpoint) with the "
        "IdP access token.",
    )
    groups_endpoint: str | None = Field(
        None,
        description="Where `groups_overage: fetch` reads groups, by GET with the IdP access token; the answer is "
        '`{"value": [...]}` of strings or objects with `id` (Microsoft Graph `/me/transitiveMemberOf`), with '
        "`@odata.nextLink` pages followed. Unset: the `_claim_sources` endpoint from the ID token (POST, the "
        "`getMemberObjects` contract).",
    )
    groups_fetch_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (`name` or `name:port`) the IdP access token may be sent to when fetching groups, "
        "besides the issuer's host and port (Entra: `graph.microsoft.com`). Any other endpoint is refused.",
    )
    send_resource: bool = Field(
        False,
        description="Send an RFC 8707 `resource` parameter (Portico's public URL) to the IdP. Off by default: "
        "Entra ID v2 rejects it.",
    )
    extra_authorize_params: dict[str, str] = Field(
        default_factory=dict,
        description="Further parameters for the authorization request, e.g. Okta `idp`, Entra `domain_hint`, "
        "`prompt: select_account`, `login_hint`. Cannot override the ones Portico sets (state, nonce, PKCE, …).",
    )
    use_userinfo: bool = Field(
        False,
        description="Also read the userinfo endpoint and fill in claims the ID token lacks (its `sub` must "
        "match). Claims in the ID token win.",
    )
    mfa_from_amr: bool = Field(
        True,
        description="Trust the ID token's `amr` claim (RFC 8176: `mfa`, `otp`, `hwk`, … mean multi-factor). "
        "Off: the identity carries no `amr`, so policy never sees this IdP's sign-ins as MFA.",
    )
    acr_values: list[str] = Field(
        default_factory=list,
        description="If set, requested as `acr_values` and required: the ID token's `acr` must be one of them.",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="Timeout of each request to the IdP, in seconds.")
    metadata_ttl_s: int = Field(
        3600, ge=0, description="How long the discovery document and JWKS are reused before being read again."
    )
    jwks_refresh_min_interval_s: int = Field(
        60,
        ge=0,
        description="An ID token signed with an unknown `kid` makes Portico re-read the JWKS (key rotation), "
        "at most once per this many seconds.",
    )
    clock_skew_s: int = Field(
        60, ge=0, le=600, description="Clock skew tolerated for the ID token's `iat` and `nbf` (and `exp`)."
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not PROVIDER_ID.fullmatch(value):
            raise ValueError("must be 1-40 of a-z, 0-9, '-', '_', starting with a letter or digit")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        check_url(value, "issuer")
        if urlsplit(value).query:
            raise ValueError("issuer must have no query")
        return value

    @field_validator("groups_endpoint")
    @classmethod
    def _groups_endpoint_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "groups_endpoint")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        if any(not s or " " in s for s in value):
            raise ValueError("scopes must be non-empty and contain no spaces")
        return list(dict.fromkeys(value))

    @field_validator("extra_authorize_params")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(value) & RESERVED_AUTHORIZE_PARAMS)
        if clash:
            raise ValueError(f"cannot set {', '.join(clash)}: Portico sets these itself")
        return value

    @model_validator(mode="after")
    def _endpoint_host_allowed(self) -> SsoProviderSettings:
        if self.groups_endpoint is not None and self.groups_overage != "fetch":
            raise ValueError("groups_endpoint is only used with groups_overage: fetch")
        if self.groups_endpoint is not None and not self.may_send_token_to(self.groups_endpoint):
            raise ValueError("groups_endpoint's host must be the issuer's host or listed in groups_fetch_hosts")
        return self

    @property
    def subject_namespace(self) -> str:
        """What goes before the IdP's subject: `subject_prefix`, or `<id>:` by default."""
        return f"{self.id}:" if self.subject_prefix is None else self.subject_prefix

    def may_send_token_to(self, url: str) -> bool:
        """Whether the IdP access token may be sent to `url` (allowlisted host, https or loopback http)."""
        try:
            check_url(url)
        except ValueError:
            return False
        allowed = {_host_port(self.issuer), *(_host_port(f"https://{h}") for h in self.groups_fetch_hosts)}
        return _host_port(url) in allowed


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)
