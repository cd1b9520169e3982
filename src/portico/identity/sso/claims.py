"""From an IdP's claims to a Portico `LoginIdentity`. Pure functions: no I/O, no clock.

    subject      = subject_namespace + claims[subject_claim]        ("entra:" + oid, by default)
    username     = claims[username_claim] or claims["email"] or the IdP's subject
    groups       = group_map applied to claims[groups_claim]; unmapped values dropped unless passed through
    amr          = claims["amr"] when mfa_from_amr, else ()         (LoginIdentity.mfa is derived from it)
    display_name = claims["name"]

Group overage (Entra ID): a user in too many groups gets an ID token without the groups claim and with
`_claim_names: {"groups": "src1"}` plus `_claim_sources: {"src1": {"endpoint": …}}` (code flow) or
`hasgroups: true` (implicit flow). `find_overage` spots both, so an absent claim is never read as "no groups".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portico.identity.login import LoginIdentity
from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.settings import SsoProviderSettings

MAX_GROUPS = 5_000  # more than any IdP puts in a token; a bound on what one sign-in may carry
MAX_CLAIM_CHARS = 1_024


@dataclass(frozen=True, slots=True)
class GroupsOverage:
    """The IdP left the groups out; `endpoint` is where the token says they can be read, if it says."""

    endpoint: str | None


def find_overage(claims: Mapping[str, Any], groups_claim: str) -> GroupsOverage | None:
    """The overage marker in `claims`, or None when the groups claim is present or simply not used."""
    if groups_claim in claims:
        return None
    names = claims.get("_claim_names")
    if isinstance(names, dict) and isinstance(names.get(groups_claim), str):
        sources = claims.get("_claim_sources")
        source = sources.get(names[groups_claim]) if isinstance(sources, dict) else None
        endpoint = source.get("endpoint") if isinstance(source, dict) else None
        return GroupsOverage(endpoint if isinstance(endpoint, str) else None)
    if groups_claim == "groups" and claims.get("hasgroups") is True:
        return GroupsOverage(None)
    return None


def read_groups(claims: Mapping[str, Any], groups_claim: str) -> list[str]:
    """The IdP's group values: a list of strings (a single string counts as one group; other values ignored)."""
    value = claims.get(groups_claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [g for g in value[:MAX_GROUPS] if isinstance(g, str) and g and len(g) <= MAX_CLAIM_CHARS]


def parse_group_page(doc: Any) -> tuple[list[str], str | None]:
    """Group ids in one page of a Graph-style answer (`{"value": [...]}`) and the next page's link, if any.

    Entries are strings (`getMemberObjects`) or objects with `id` (`memberOf`); objects of another
    `@odata.type` than a group (directory roles, administrative units) are skipped.

    Raises:
        SsoError: `GROUPS_FETCH_FAILED` when the answer has no `value` list.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise SsoError(SsoFailure.GROUPS_FETCH_FAILED, detail="group answer has no 'value' list")
    groups: list[str] = []
    for entry in doc["value"]:
        if isinstance(entry, str):
            groups.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str):
            kind = entry.get("@odata.type", "#microsoft.graph.group")
            if kind == "#microsoft.graph.group":
                groups.append(entry["id"])
    link = doc.get("@odata.nextLink")
    return groups, link if isinstance(link, str) else None


def map_groups(raw: Iterable[str], group_map: Mapping[str, str], pass_unmapped: bool) -> frozenset[str]:
    """Portico groups for the IdP's group values."""
    mapped = set()
    for value in raw:
        if value in group_map:
            mapped.add(group_map[value])
        elif pass_unmapped:
            mapped.add(value)
    return frozenset(mapped)


def build_identity(
    settings: SsoProviderSettings, claims: Mapping[str, Any], raw_groups: Iterable[str]
) -> LoginIdentity:
    """The identity the IdP vouches for, if it may sign in.

    Raises:
        SsoError: `SUBJECT_MISSING` (no usable subject claim) or `GROUP_NOT_ALLOWED` (not in `allowed_groups`).
    """
    idp_subject = _text(claims.get(settings.subject_claim))
    if idp_subject is None:
        raise SsoError(SsoFailure.SUBJECT_MISSING, detail=f"claim {settings.subject_claim!r} missing or not text")
    groups = map_groups(raw_groups, settings.group_map, settings.pass_unmapped_groups)
    if settings.allowed_groups and not groups & set(settings.allowed_groups):
        raise SsoError(SsoFailure.GROUP_NOT_ALLOWED, detail=f"{idp_subject} is in none of allowed_groups")
    email = _text(claims.get("email"))
    username = _text(claims.get(settings.username_claim)) or email or idp_subject
    amr_claim = claims.get("amr")
    amr: tuple[str, ...] = ()
    if settings.mfa_from_amr and isinstance(amr_claim, list):
        amr = tuple(dict.fromkeys(m for m in amr_claim if isinstance(m, str) and 0 < len(m) <= 32))
    return LoginIdentity(
        subject=settings.subject_namespace + idp_subject,
        username=username,
        groups=groups,
        amr=amr,
        idp=settings.id,
        display_name=_text(claims.get("name")),
        extra={"email": email} if email else {},
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS else None
