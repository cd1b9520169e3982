"""Access tokens: issued per RFC 9068, bound to one resource, and refused, with one typed error and a public
reason, for every way a token can be wrong. Every token here is a real one, built or forged with joserfc."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from pydantic import ValidationError

from portico.errors import DENIED
from portico.identity.keys import KeyRing, SigningKey, new_signing_key
from portico.identity.settings import TokenSettings
from portico.identity.tokens import (
    REQUIRED_CLAIMS,
    InvalidTokenError,
    TokenIssuer,
    TokenRejection,
    TokenVerifier,
    VerifiedToken,
)

ISSUER = "https://gw.example"
RESOURCE = "https://gw.example/mcp"
OTHER_RESOURCE = "https://gw.example/servers/github/mcp"
START = 1_800_000_000.0
DROP = object()  # a claim or header member to leave out
STRANGER = ECKey.generate_key("P-256")
RSA = RSAKey.generate_key(2048)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    clock: Clock
    settings: TokenSettings
    ring: KeyRing
    issuer: TokenIssuer
    verifier: TokenVerifier
    revoked: set[str] = field(default_factory=set)

    @property
    def key(self) -> SigningKey:
        return self.ring.current

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": "alice", "aud": RESOURCE, "exp": now + 600, "iat": now, "nbf": now,
            "jti": "jti-1", "client_id": "client-1", "scope": "mcp:tools mcp:read", "groups": ["eng"],
            "amr": ["pwd", "otp"],
        }  # fmt: skip
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not DROP}

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid, **changes}
        return {k: v for k, v in header.items() if v is not DROP}

    def sign(self, claims: dict[str, Any] | None = None, *, payload: bytes | None = None, key: Any = None,
             **header: Any) -> str:  # fmt: skip
        """A token signed by joserfc: our current key unless `key`, our header with `header` changes."""
        hdr = self.header(**header)
        body = payload if payload is not None else json.dumps(self.claims() if claims is None else claims).encode()
        registry = jws.JWSRegistry(algorithms=[hdr["alg"]], strict_check_header=False)
        return jws.serialize_compact(hdr, body, key or self.key.key, registry=registry)


def make_world(**settings: Any) -> World:
    clock = Clock()
    token_settings = TokenSettings(issuer=ISSUER, **settings)
    ring = KeyRing.generate(grace_s=token_settings.rotation_grace_s, clock=clock)
    revoked: set[str] = set()
    verifier = TokenVerifier(ring, token_settings, clock, is_revoked=revoked.__contains__)
    return World(clock, token_settings, ring, TokenIssuer(ring, token_settings, clock), verifier, revoked)


@pytest.fixture
def world() -> World:
    return make_world()


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def assemble(header: object, payload: object, signature: bytes = b"") -> str:
    """A compact JWS put together by hand, for headers joserfc refuses to sign."""
    return ".".join([b64(json.dumps(header)), b64(json.dumps(payload)), b64(signature)])


def hs256(w: World, secret: bytes) -> str:
    """The algorithm-confusion forgery: HMAC over our header and claims, keyed by something public."""
    signing_input = f"{b64(json.dumps(w.header(alg='HS256')))}.{b64(json.dumps(w.claims()))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def with_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def flip_middle_of_signature(token: str) -> str:
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{signature[:middle]}{swapped}{signature[middle + 1 :]}"


def reason_of(w: World, token: str, audience: str = RESOURCE) -> TokenRejection:
    with pytest.raises(InvalidTokenError) as caught:
        w.verifier.verify(token, audience)
    return caught.value.reason


Forge = Callable[[World], str]
R = TokenRejection
LEEWAY = 30

NEGATIVE_MATRIX: list[Any] = [
    # size and shape
    pytest.param(lambda w: "", R.MALFORMED, id="empty"),
    pytest.param(lambda w: "not-a-token", R.MALFORMED, id="one-segment"),
    pytest.param(lambda w: w.sign().rpartition(".")[0], R.MALFORMED, id="two-segments"),
    pytest.param(lambda w: w.sign() + ".e30", R.MALFORMED, id="four-segments"),
    pytest.param(lambda w: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", R.MALFORMED, id="jwe-shaped"),
    pytest.param(lambda w: "Bearer " + w.sign(), R.MALFORMED, id="with-bearer-prefix"),
    pytest.param(lambda w: w.sign() + " ", R.MALFORMED, id="trailing-space"),
    pytest.param(lambda w: w.sign() + "\n", R.MALFORMED, id="trailing-newline"),
    pytest.param(lambda w: w.sign() + "=", R.MALFORMED, id="base64-padding"),
    pytest.param(lambda w: w.sign() + "é", R.MALFORMED, id="non-ascii"),
    pytest.param(lambda w: with_segment(w.sign(), 1, "e+/="), R.MALFORMED, id="standard-base64-alphabet"),
    pytest.param(lambda w: with_segment(w.sign(), 0, b64("not json")), R.MALFORMED, id="header-not-json"),
    pytest.param(lambda w: with_segment(w.sign(), 0, b64(b"\xff\xfe")), R.MALFORMED, id="header-not-utf8"),
    pytest.param(lambda w: with_segment(w.sign(), 0, b64("[1]")), R.MALFORMED, id="header-json-array"),
    pytest.param(lambda w: with_segment(w.sign(), 0, b64('"alg"')), R.MALFORMED, id="header-json-string"),
    pytest.param(lambda w: w.sign(payload=b"not json"), R.MALFORMED, id="signed-payload-not-json"),
    pytest.param(lambda w: w.sign(payload=b'["alice"]'), R.MALFORMED, id="signed-payload-json-array"),
    pytest.param(
        lambda w: assemble(w.header(crit=["ext"], ext=1), w.claims(), b"sig"), R.MALFORMED, id="crit-extension"
    ),
    pytest.param(lambda w: w.sign(b64=True), R.MALFORMED, id="b64-header"),
    pytest.param(lambda w: "x" * (w.settings.max_token_bytes + 1), R.TOO_LARGE, id="oversize-garbage"),
    pytest.param(
        lambda w: w.sign(w.claims(groups=[f"group-{i:04d}" for i in range(1000)])),
        R.TOO_LARGE,
        id="oversize-but-validly-signed",
    ),
    # algorithm: none, confusion and anything outside the allowlist
    pytest.param(lambda w: assemble(w.header(alg="none"), w.claims()), R.ALGORITHM, id="alg-none"),
    pytest.param(lambda w: assemble(w.header(alg="None"), w.claims()), R.ALGORITHM, id="alg-None"),
    pytest.param(lambda w: assemble(w.header(alg="nOnE"), w.claims()), R.ALGORITHM, id="alg-nOnE"),
    pytest.param(
        lambda w: assemble(w.header(alg="none"), w.claims(), b"sig"), R.ALGORITHM, id="alg-none-with-signature"
    ),
    pytest.param(lambda w: assemble(w.header(alg=DROP), w.claims(), b"sig"), R.ALGORITHM, id="alg-missing"),
    pytest.param(lambda w: assemble(w.header(alg=""), w.claims(), b"sig"), R.ALGORITHM, id="alg-empty"),
    pytest.param(lambda w: assemble(w.header(alg=["ES256"]), w.claims(), b"s"), R.ALGORITHM, id="alg-list"),
    pytest.param(lambda w: assemble(w.header(alg="es256"), w.claims(), b"sig"), R.ALGORITHM, id="alg-lowercase"),
    pytest.param(lambda w: hs256(w, w.key.key.as_pem(private=False)), R.ALGORITHM, id="hs256-keyed-by-public-pem"),
    pytest.param(
        lambda w: hs256(w, json.dumps(w.ring.jwks()["keys"][0]).encode()),
        R.ALGORITHM,
        id="hs256-keyed-by-public-jwk",
    ),
    pytest.param(lambda w: hs256(w, b""), R.ALGORITHM, id="hs256-empty-secret"),
    pytest.param(lambda w: w.sign(key=RSA, alg="RS256"), R.ALGORITHM, id="rs256-not-allowed"),
    pytest.param(lambda w: w.sign(key=RSA, alg="PS256"), R.ALGORITHM, id="ps256-not-allowed"),
    pytest.param(lambda w: w.sign(key=ECKey.generate_key("P-384"), alg="ES384"), R.ALGORITHM, id="es384-not-allowed"),
    # type
    pytest.param(lambda w: w.sign(typ=DROP), R.TYPE, id="typ-missing"),
    pytest.param(lambda w: w.sign(typ="JWT"), R.TYPE, id="typ-jwt"),
    pytest.param(lambda w: w.sign(typ="id+jwt"), R.TYPE, id="typ-id-token"),
    pytest.param(lambda w: w.sign(typ="at+jwt; x"), R.TYPE, id="typ-with-suffix"),
    pytest.param(lambda w: assemble(w.header(typ=["at+jwt"]), w.claims(), b"sig"), R.TYPE, id="typ-list"),
    # key id
    pytest.param(lambda w: w.sign(kid=DROP), R.UNKNOWN_KEY, id="kid-missing"),
    pytest.param(lambda w: w.sign(kid=""), R.UNKNOWN_KEY, id="kid-empty"),
    pytest.param(lambda w: w.sign(kid="unknown"), R.UNKNOWN_KEY, id="kid-unknown"),
    pytest.param(lambda w: assemble(w.header(kid=7), w.claims(), b"sig"), R.UNKNOWN_KEY, id="kid-number"),
    pytest.param(lambda w: w.sign(kid="../../etc/passwd"), R.UNKNOWN_KEY, id="kid-path"),
    pytest.param(lambda w: w.sign(key=STRANGER, kid=STRANGER.thumbprint()), R.UNKNOWN_KEY, id="stranger-key-own-kid"),
    # signature
    pytest.param(lambda w: flip_middle_of_signature(w.sign()), R.SIGNATURE, id="signature-flipped"),
    pytest.param(lambda w: with_segment(w.sign(), 2, ""), R.SIGNATURE, id="signature-stripped"),
    pytest.param(lambda w: w.sign()[:-20], R.SIGNATURE, id="signature-truncated"),
    pytest.param(
        lambda w: with_segment(w.sign(), 1, b64(json.dumps(w.claims(sub="admin")))),
        R.SIGNATURE,
        id="payload-tampered",
    ),
    pytest.param(
        lambda w: with_segment(w.sign(), 2, w.sign(w.claims(sub="bob")).split(".")[2]),
        R.SIGNATURE,
        id="signature-from-another-token",
    ),
    pytest.param(lambda w: w.sign(key=STRANGER), R.SIGNATURE, id="stranger-key-under-our-kid"),
    pytest.param(
        lambda w: w.sign(key=STRANGER, jwk=STRANGER.as_dict(private=False)),
        R.SIGNATURE,
        id="stranger-key-embedded-in-jwk-header",
    ),
    pytest.param(
        lambda w: w.sign(key=STRANGER, jku="https://evil.example/jwks.json"),
        R.SIGNATURE,
        id="stranger-key-behind-jku",
    ),
    # claims present and typed
    *[
        pytest.param(lambda w, c=claim: w.sign(w.claims(**{c: DROP})), R.MISSING_CLAIMS, id=f"no-{claim}")
        for claim in REQUIRED_CLAIMS
    ],
    pytest.param(lambda w: w.sign(w.claims(sub="")), R.MISSING_CLAIMS, id="sub-empty"),
    pytest.param(lambda w: w.sign(w.claims(client_id=None)), R.MISSING_CLAIMS, id="client-id-null"),
    pytest.param(lambda w: w.sign(w.claims(aud=[])), R.MISSING_CLAIMS, id="aud-empty-list"),
    pytest.param(lambda w: w.sign(w.claims(sub=42)), R.MALFORMED, id="sub-number"),
    pytest.param(lambda w: w.sign(w.claims(aud=7)), R.MALFORMED, id="aud-number"),
    pytest.param(lambda w: w.sign(w.claims(aud=[RESOURCE, 7])), R.MALFORMED, id="aud-list-with-number"),
    pytest.param(lambda w: w.sign(w.claims(exp="9999999999")), R.MALFORMED, id="exp-string"),
    pytest.param(lambda w: w.sign(w.claims(exp=True)), R.MALFORMED, id="exp-bool"),
    pytest.param(lambda w: w.sign(payload=json.dumps(w.claims(exp=float("nan"))).encode()), R.MALFORMED, id="exp-NaN"),
    pytest.param(
        lambda w: w.sign(payload=json.dumps(w.claims(exp=float("inf"))).encode()),
        R.MALFORMED,
        id="exp-Infinity",
    ),
    pytest.param(lambda w: w.sign(w.claims(iat="now")), R.MALFORMED, id="iat-string"),
    pytest.param(lambda w: w.sign(w.claims(nbf=[0])), R.MALFORMED, id="nbf-list"),
    pytest.param(lambda w: w.sign(w.claims(scope=["mcp:tools"])), R.MALFORMED, id="scope-list"),
    pytest.param(lambda w: w.sign(w.claims(groups="admins")), R.MALFORMED, id="groups-string"),
    pytest.param(lambda w: w.sign(w.claims(amr=[1])), R.MALFORMED, id="amr-numbers"),
    pytest.param(lambda w: w.sign(w.claims(jti=5)), R.MALFORMED, id="jti-number"),
    # issuer
    pytest.param(lambda w: w.sign(w.claims(iss="https://evil.example")), R.ISSUER, id="iss-other"),
    pytest.param(lambda w: w.sign(w.claims(iss=ISSUER + "/")), R.ISSUER, id="iss-trailing-slash"),
    pytest.param(lambda w: w.sign(w.claims(iss="http://gw.example")), R.ISSUER, id="iss-http"),
    pytest.param(lambda w: w.sign(w.claims(iss="https://GW.example")), R.ISSUER, id="iss-case"),
    pytest.param(lambda w: w.sign(w.claims(iss=[ISSUER])), R.MALFORMED, id="iss-list"),
    # time
    pytest.param(lambda w: w.sign(w.claims(exp=int(w.clock()) - 1)), R.EXPIRED, id="expired"),
    pytest.param(lambda w: w.sign(w.claims(exp=int(w.clock()))), R.EXPIRED, id="expires-now"),
    pytest.param(lambda w: w.sign(w.claims(exp=int(w.clock()) - LEEWAY + 1)), R.EXPIRED, id="expired-within-leeway"),
    pytest.param(lambda w: w.sign(w.claims(exp=0, iat=0, nbf=0)), R.EXPIRED, id="expired-long-ago"),
    pytest.param(lambda w: w.sign(w.claims(nbf=int(w.clock()) + LEEWAY + 1)), R.NOT_YET_VALID, id="nbf-beyond-leeway"),
    pytest.param(lambda w: w.sign(w.claims(iat=int(w.clock()) + LEEWAY + 1)), R.NOT_YET_VALID, id="iat-beyond-leeway"),
    pytest.param(
        lambda w: w.sign(w.claims(nbf=int(w.clock()) + 86_400, exp=int(w.clock()) + 90_000)),
        R.NOT_YET_VALID,
        id="nbf-tomorrow",
    ),
    # audience (RFC 8707): a token for another resource is refused here
    pytest.param(lambda w: w.sign(w.claims(aud=OTHER_RESOURCE)), R.AUDIENCE, id="aud-other-server"),
    pytest.param(lambda w: w.sign(w.claims(aud=ISSUER)), R.AUDIENCE, id="aud-gateway-root"),
    pytest.param(lambda w: w.sign(w.claims(aud=RESOURCE + "/")), R.AUDIENCE, id="aud-trailing-slash"),
    pytest.param(lambda w: w.sign(w.claims(aud=RESOURCE + "x")), R.AUDIENCE, id="aud-prefix-match"),
    pytest.param(lambda w: w.sign(w.claims(aud="https://api.upstream.example")), R.AUDIENCE, id="aud-upstream"),
    pytest.param(lambda w: w.sign(w.claims(aud=[OTHER_RESOURCE, ISSUER])), R.AUDIENCE, id="aud-list-without-us"),
    pytest.param(
        lambda w: w.issuer.issue("alice", OTHER_RESOURCE, scopes=["mcp"], client_id="c"),
        R.AUDIENCE,
        id="issued-for-another-resource",
    ),
    # revocation
    pytest.param(lambda w: (w.revoked.add("jti-1"), w.sign())[1], R.REVOKED, id="revoked-jti"),
]


@pytest.mark.requirement("identity:token-negative-matrix")
@pytest.mark.parametrize(("forge", "reason"), NEGATIVE_MATRIX)
def test_every_bad_token_is_refused_with_one_typed_error_and_a_public_reason(
    world: World, forge: Forge, reason: TokenRejection
) -> None:
    token = forge(world)
    with pytest.raises(InvalidTokenError) as caught:
        world.verifier.verify(token, RESOURCE)
    error = caught.value
    assert error.reason is reason
    assert error.public == f"Invalid access token: {reason.value}"
    assert error.code == DENIED
    assert error.to_rpc().message == error.public
    echoes = [part for part in (token, *token.split(".")) if len(part) >= 8]
    for text in (error.public, error.detail or "", str(error)):
        assert not [part for part in echoes if part in text], "the error echoes the token"
    assert world.verifier.cached == 0


@pytest.mark.requirement("identity:no-alg-confusion")
def test_an_algorithm_the_config_allows_is_still_refused_when_the_named_key_is_not_made_for_it() -> None:
    world = make_world(allowed_algs=["ES256", "ES384", "RS256"])
    forged_rs256 = world.sign(key=RSA, alg="RS256")  # an RSA signature under our EC key's kid
    forged_es384 = world.sign(key=ECKey.generate_key("P-384"), alg="ES384")
    assert reason_of(world, forged_rs256) is TokenRejection.ALGORITHM
    assert reason_of(world, forged_es384) is TokenRejection.ALGORITHM


def test_an_issued_token_verifies_for_its_resource_with_everything_it_was_issued_with(world: World) -> None:
    token = world.issuer.issue(
        "alice", RESOURCE, scopes=["mcp:tools", "mcp:read"], client_id="client-1", groups=["eng", "ops"],
        amr=["pwd", "otp"],
    )  # fmt: skip
    verified = world.verifier.verify(token, RESOURCE)
    assert verified == VerifiedToken(
        subject="alice", client_id="client-1", scopes=frozenset({"mcp:tools", "mcp:read"}),
        groups=frozenset({"eng", "ops"}), amr=("pwd", "otp"), audience=RESOURCE, expires_at=START + 600,
        jti=verified.jti,
    )  # fmt: skip
    assert len(verified.jti) >= 20


def test_an_issued_token_is_an_rfc_9068_jwt_that_anyone_with_the_jwks_can_verify(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=["mcp"], client_id="client-1", amr=["pwd"], ttl_s=60)
    decoded = jwt.decode(token, KeySet.import_key_set(json.loads(json.dumps(world.ring.jwks()))), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "typ": "at+jwt", "kid": world.key.kid}
    now = int(START)
    assert decoded.claims == {
        "iss": ISSUER, "sub": "alice", "aud": RESOURCE, "exp": now + 60, "iat": now, "nbf": now,
        "jti": decoded.claims["jti"], "client_id": "client-1", "scope": "mcp", "amr": ["pwd"],
    }  # fmt: skip
    assert TokenVerifier(world.ring.jwks(), world.settings, world.clock).verify(token, RESOURCE).subject == "alice"


def test_each_issued_token_has_its_own_jti(world: World) -> None:
    jtis = {
        world.verifier.verify(world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c"), RESOURCE).jti
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_a_token_without_scopes_groups_or_amr_verifies_with_empty_ones(world: World) -> None:
    token = world.issuer.issue("svc", RESOURCE, scopes=[], client_id="machine")
    assert "scope" not in jwt.decode(token, world.key.key).claims
    verified = world.verifier.verify(token, RESOURCE)
    assert (verified.scopes, verified.groups, verified.amr) == (frozenset(), frozenset(), ())


ACCEPTED: list[Any] = [
    pytest.param(lambda w: w.sign(typ="application/at+jwt"), id="typ-with-media-prefix"),
    pytest.param(lambda w: w.sign(typ="AT+JWT"), id="typ-uppercase"),
    pytest.param(lambda w: w.sign(w.claims(aud=[OTHER_RESOURCE, RESOURCE])), id="aud-list-including-us"),
    pytest.param(lambda w: w.sign(w.claims(nbf=int(w.clock()) + LEEWAY)), id="nbf-within-leeway"),
    pytest.param(lambda w: w.sign(w.claims(iat=int(w.clock()) + LEEWAY)), id="iat-within-leeway"),
    pytest.param(lambda w: w.sign(w.claims(nbf=DROP)), id="no-nbf"),
    pytest.param(lambda w: w.sign(w.claims(scope=DROP, groups=DROP, amr=DROP)), id="no-optional-claims"),
    pytest.param(lambda w: w.sign(w.claims(exp=int(w.clock()) + 1)), id="one-second-left"),
    pytest.param(lambda w: w.sign(w.claims(exp=w.clock() + 0.5, iat=w.clock() - 0.5)), id="fractional-times"),
    pytest.param(lambda w: w.sign(w.claims(acr="urn:mace:incommon:iap:silver", tenant="t1")), id="extra-claims"),
    pytest.param(lambda w: w.sign(x5t="ignored"), id="extra-header-member"),
]


@pytest.mark.parametrize("forge", ACCEPTED)
def test_well_formed_variants_of_a_valid_token_are_accepted(world: World, forge: Forge) -> None:
    assert world.verifier.verify(forge(world), RESOURCE).subject == "alice"


@pytest.mark.requirement("identity:audience-bound-tokens")
def test_a_token_is_valid_only_at_the_resource_it_was_issued_for(world: World) -> None:
    token = world.issuer.issue("alice", OTHER_RESOURCE, scopes=["mcp"], client_id="c")
    assert world.verifier.verify(token, OTHER_RESOURCE).audience == OTHER_RESOURCE
    assert reason_of(world, token, RESOURCE) is TokenRejection.AUDIENCE


def test_a_multi_audience_token_reports_the_resource_it_was_verified_for(world: World) -> None:
    token = world.sign(world.claims(aud=[RESOURCE, OTHER_RESOURCE]))
    assert world.verifier.verify(token, RESOURCE).audience == RESOURCE
    assert world.verifier.verify(token, OTHER_RESOURCE).audience == OTHER_RESOURCE


BAD_ISSUE_ARGUMENTS: list[Any] = [
    pytest.param({"subject": ""}, id="empty-subject"),
    pytest.param({"client_id": ""}, id="empty-client-id"),
    pytest.param({"audience": "/mcp"}, id="relative-audience"),
    pytest.param({"audience": "gw.example"}, id="audience-without-scheme"),
    pytest.param({"audience": RESOURCE + "#frag"}, id="audience-with-fragment"),
    pytest.param({"scopes": ["two words"]}, id="scope-with-space"),
    pytest.param({"scopes": ['say"hi']}, id="scope-with-quote"),
    pytest.param({"scopes": [""]}, id="empty-scope"),
    pytest.param({"ttl_s": 0}, id="ttl-zero"),
    pytest.param({"ttl_s": -5}, id="ttl-negative"),
    pytest.param({"ttl_s": 86_401}, id="ttl-over-max"),
    pytest.param({"groups": [f"group-{i:04d}" for i in range(1000)]}, id="token-over-max-bytes"),
]


@pytest.mark.parametrize("changes", BAD_ISSUE_ARGUMENTS)
def test_the_issuer_refuses_arguments_that_would_make_a_bad_token(world: World, changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"subject": "alice", "audience": RESOURCE, "scopes": ["mcp"], "client_id": "c"}
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the argument; any ValueError is the contract
        world.issuer.issue(**{**arguments, **changes})


def test_the_ttl_defaults_to_the_setting_and_can_be_asked_for(world: World) -> None:
    default = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    short = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c", ttl_s=5)
    assert world.verifier.verify(default, RESOURCE).expires_at == START + 600
    assert world.verifier.verify(short, RESOURCE).expires_at == START + 5


# key rotation


@pytest.mark.requirement("identity:rotated-key-verifies-during-grace-only")
def test_a_token_signed_by_a_retired_key_verifies_during_the_grace_period_and_not_after() -> None:
    world = make_world(access_ttl_s=600, max_access_ttl_s=3600, rotation_grace_s=3600)
    old_kid = world.key.kid
    issued = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    long_lived = world.sign(world.claims(exp=int(START) + 10 * 3600))  # outlives the grace: only the key can fail
    world.ring.rotate()
    assert world.key.kid != old_kid
    world.clock.now += 599
    assert world.verifier.verify(issued, RESOURCE).subject == "alice"
    new = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    assert jwt.decode(new, world.key.key).header["kid"] == world.key.kid
    world.clock.now += 3000
    assert world.verifier.verify(long_lived, RESOURCE).subject == "alice"
    world.clock.now += 1
    assert reason_of(world, long_lived) is TokenRejection.UNKNOWN_KEY
    assert world.verifier.verify(world.sign(), RESOURCE).subject == "alice"  # the new key goes on


def test_every_token_issued_before_a_rotation_outlives_it_with_the_default_settings(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c", ttl_s=world.settings.max_access_ttl_s)
    world.ring.rotate()
    world.clock.now += world.settings.max_access_ttl_s - 1
    assert world.verifier.verify(token, RESOURCE).subject == "alice"


def test_rotating_with_no_grace_stops_the_previous_keys_tokens_at_once(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    world.ring.rotate(grace_s=0)
    assert reason_of(world, token) is TokenRejection.UNKNOWN_KEY


# the verification cache


def test_a_cached_verification_returns_the_same_result_without_checking_the_signature_again(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=["mcp"], client_id="c")
    first = world.verifier.verify(token, RESOURCE)
    second = world.verifier.verify(token, RESOURCE)
    assert second is first
    assert (world.verifier.misses, world.verifier.hits, world.verifier.cached) == (1, 1, 1)


def test_a_cached_token_is_dropped_when_it_expires(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c", ttl_s=60)
    world.verifier.verify(token, RESOURCE)
    world.clock.now += 59
    world.verifier.verify(token, RESOURCE)
    world.clock.now += 1
    assert reason_of(world, token) is TokenRejection.EXPIRED
    assert world.verifier.cached == 0
    assert reason_of(world, token) is TokenRejection.EXPIRED


@pytest.mark.requirement("identity:revocation-checked-on-every-call")
def test_a_cached_token_revoked_afterwards_is_refused(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    jti = world.verifier.verify(token, RESOURCE).jti
    world.revoked.add(jti)
    assert reason_of(world, token) is TokenRejection.REVOKED


def test_a_cached_token_is_still_refused_at_another_resource(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    world.verifier.verify(token, RESOURCE)
    assert reason_of(world, token, OTHER_RESOURCE) is TokenRejection.AUDIENCE
    assert world.verifier.verify(token, RESOURCE).subject == "alice"


def test_a_cached_token_is_refused_once_its_signing_key_stops_verifying(world: World) -> None:
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    world.verifier.verify(token, RESOURCE)
    world.ring.rotate(grace_s=0)
    assert reason_of(world, token) is TokenRejection.UNKNOWN_KEY
    assert world.verifier.cached == 0


def test_the_cache_is_bounded_and_forgets_the_least_recently_used_token() -> None:
    world = make_world(verify_cache_entries=2)
    first, second, third = (world.issuer.issue(s, RESOURCE, scopes=[], client_id="c") for s in ("a", "b", "c"))
    for token in (first, second, first, third):  # `first` was used more recently than `second`
        world.verifier.verify(token, RESOURCE)
    assert world.verifier.cached == 2
    hits = world.verifier.hits
    world.verifier.verify(first, RESOURCE)
    assert world.verifier.hits == hits + 1
    misses = world.verifier.misses
    world.verifier.verify(second, RESOURCE)
    assert world.verifier.misses == misses + 1


def test_a_cache_of_zero_entries_checks_every_token_in_full() -> None:
    world = make_world(verify_cache_entries=0)
    token = world.issuer.issue("alice", RESOURCE, scopes=[], client_id="c")
    for _ in range(3):
        world.verifier.verify(token, RESOURCE)
    assert (world.verifier.hits, world.verifier.misses, world.verifier.cached) == (0, 3, 0)


# settings


def test_every_token_setting_has_a_default_and_a_description() -> None:
    for name, setting in TokenSettings.model_fields.items():
        assert not setting.is_required(), name
        assert setting.description, name


def test_the_token_defaults_are_short_lived_es256_tokens_with_a_key_file_in_the_data_directory() -> None:
    settings = TokenSettings()
    assert (settings.access_ttl_s, settings.leeway_s, settings.allowed_algs) == (600, 30, ["ES256"])
    assert str(settings.key_file) == ".portico/identity/signing-keys.json"
    assert settings.rotation_grace_s >= settings.max_access_ttl_s


BAD_SETTINGS: list[Any] = [
    pytest.param({"surprise": 1}, id="unknown-key"),
    pytest.param({"issuer": "gw.example"}, id="issuer-not-a-url"),
    pytest.param({"issuer": "ftp://gw.example"}, id="issuer-not-http"),
    pytest.param({"issuer": "https://gw.example?tenant=1"}, id="issuer-with-query"),
    pytest.param({"issuer": "https://gw.example#x"}, id="issuer-with-fragment"),
    pytest.param({"allowed_algs": ["HS256"]}, id="hs256"),
    pytest.param({"allowed_algs": ["ES256", "HS256"]}, id="hs256-beside-es256"),
    pytest.param({"allowed_algs": ["ES256", "none"]}, id="none"),
    pytest.param({"allowed_algs": ["RS256"]}, id="without-es256"),
    pytest.param({"allowed_algs": []}, id="no-algs"),
    pytest.param({"access_ttl_s": 0}, id="ttl-zero"),
    pytest.param({"access_ttl_s": 7200, "max_access_ttl_s": 3600, "rotation_grace_s": 3600}, id="ttl-over-max"),
    pytest.param({"rotation_grace_s": 600}, id="grace-shorter-than-max-ttl"),
    pytest.param({"leeway_s": 3600}, id="leeway-an-hour"),
    pytest.param({"max_token_bytes": 100}, id="token-cap-too-small"),
    pytest.param({"verify_cache_entries": -1}, id="negative-cache"),
]


@pytest.mark.parametrize("values", BAD_SETTINGS)
def test_unsafe_or_inconsistent_token_settings_are_rejected(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TokenSettings.model_validate(values)


def test_a_fresh_signing_key_is_named_by_its_thumbprint() -> None:
    key = new_signing_key()
    assert key.kid == key.key.thumbprint()


@pytest.mark.parametrize("token", [None, b"eyJ.eyJ.sig", ["a", "b"]], ids=["none", "bytes", "list"])
def test_a_token_that_is_not_a_string_is_refused_as_malformed(world: World, token: object) -> None:
    assert reason_of(world, cast(str, token)) is TokenRejection.MALFORMED
