"""The signing key ring: a key file created 0600 on first use, rotation with a grace period, a JWKS that
publishes public keys only, and a corrupt key file that stops start-up instead of being replaced."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from portico.identity.keys import (
    PRIVATE_JWK_MEMBERS,
    JwksKeys,
    KeyRing,
    SigningKeyError,
    new_signing_key,
)
from portico.identity.settings import TokenSettings

START = 1_800_000_000.0
GRACE = 3600


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings_for(path: Path, **values: Any) -> TokenSettings:
    return TokenSettings(key_file=path, max_access_ttl_s=GRACE, rotation_grace_s=GRACE, **values)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "identity" / "signing-keys.json"


def file_kids(path: Path) -> list[str]:
    return [k["kid"] for k in json.loads(path.read_text())["keys"]]


def jwks_kids(ring: KeyRing) -> list[str]:
    return [k["kid"] for k in ring.jwks()["keys"]]


@pytest.mark.requirement("identity:signing-keys-0600")
def test_the_key_file_is_created_on_first_use_with_mode_0600_and_reused_afterwards(key_file: Path) -> None:
    first = KeyRing.open(settings_for(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert KeyRing.open(settings_for(key_file)).current.kid == first.current.kid
    assert file_kids(key_file) == [first.current.kid]


def test_the_key_file_is_a_json_key_set_of_private_p256_keys(key_file: Path) -> None:
    ring = KeyRing.open(settings_for(key_file))
    document = json.loads(key_file.read_text())
    assert document["current"] == ring.current.kid
    assert document["retired"] == {}
    (jwk,) = document["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert ECKey.import_key(jwk).is_private


@pytest.mark.requirement("identity:jwks-public-only")
def test_the_jwks_publishes_public_members_only(key_file: Path) -> None:
    clock = Clock()
    ring = KeyRing.open(settings_for(key_file), clock)
    ring.rotate()
    jwks = json.loads(json.dumps(ring.jwks()))
    assert set(jwks) == {"keys"}
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert not set(jwk) & PRIVATE_JWK_MEMBERS, jwk
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert not ECKey.import_key(jwk).is_private
    assert {"d", "p", "q", "dp", "dq", "qi", "k"} <= PRIVATE_JWK_MEMBERS
    assert "verify_until" not in json.dumps(jwks)


def test_the_jwks_lists_the_current_key_first_then_retired_keys_newest_first() -> None:
    clock = Clock()
    ring = KeyRing.generate(grace_s=GRACE, clock=clock)
    kids = [ring.current.kid]
    for _ in range(2):
        clock.now += 10
        kids.append(ring.rotate().kid)
    assert jwks_kids(ring) == list(reversed(kids))


@pytest.mark.requirement("identity:rotated-key-verifies-during-grace-only")
def test_a_retired_key_verifies_and_is_published_until_its_grace_period_ends() -> None:
    clock = Clock()
    ring = KeyRing.generate(grace_s=GRACE, clock=clock)
    old = ring.current
    new = ring.rotate()
    assert ring.current == new
    assert new.kid != old.kid
    clock.now += GRACE - 1
    assert ring.verification_key(old.kid) is not None
    assert jwks_kids(ring) == [new.kid, old.kid]
    clock.now += 1
    assert ring.verification_key(old.kid) is None
    assert jwks_kids(ring) == [new.kid]
    assert ring.verification_key(new.kid) is not None


def test_a_rotation_is_saved_and_survives_reopening_the_key_file(key_file: Path) -> None:
    clock = Clock()
    ring = KeyRing.open(settings_for(key_file), clock)
    old = ring.current.kid
    new = ring.rotate().kid
    reopened = KeyRing.open(settings_for(key_file), clock)
    assert reopened.current.kid == new
    assert jwks_kids(reopened) == [new, old]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["signing-keys.json", "signing-keys.json.lock"]


def test_keys_past_their_grace_are_pruned_from_the_file_at_the_next_rotation(key_file: Path) -> None:
    clock = Clock()
    ring = KeyRing.open(settings_for(key_file), clock)
    first = ring.current.kid
    second = ring.rotate().kid
    clock.now += GRACE
    third = ring.rotate().kid
    assert file_kids(key_file) == [third, second]
    assert first not in json.loads(key_file.read_text())["retired"]


def test_two_processes_rotating_one_key_file_keep_both_new_keys(key_file: Path) -> None:
    clock = Clock()
    mine = KeyRing.open(settings_for(key_file), clock)
    theirs = KeyRing.open(settings_for(key_file), clock)  # loaded before `mine` rotates: stale afterwards
    first = mine.current.kid
    mine_new = mine.rotate().kid
    theirs_new = theirs.rotate().kid
    assert theirs.current.kid == theirs_new
    assert set(jwks_kids(theirs)) == {first, mine_new, theirs_new}
    mine.reload()
    assert mine.current.kid == theirs_new
    assert mine.verification_key(mine_new) is not None


def test_rotating_with_no_grace_drops_the_previous_key_at_once() -> None:
    ring = KeyRing.generate(grace_s=GRACE, clock=Clock())
    old = ring.current.kid
    ring.rotate(grace_s=0)
    assert ring.verification_key(old) is None
    assert jwks_kids(ring) == [ring.current.kid]


def test_a_negative_grace_is_refused() -> None:
    ring = KeyRing.generate(grace_s=GRACE)
    with pytest.raises(ValueError, match="grace_s"):
        ring.rotate(grace_s=-1)


def test_a_ring_cannot_be_built_with_a_retired_current_key() -> None:
    key = new_signing_key()
    retired = type(key)(kid=key.kid, key=key.key, retired_at=START, verify_until=START + 1)
    with pytest.raises(ValueError, match="current key"):
        KeyRing(retired, grace_s=GRACE)
    with pytest.raises(ValueError, match="retired keys"):
        KeyRing(key, (new_signing_key(),), grace_s=GRACE)


def _valid_document() -> dict[str, Any]:
    current, retired = new_signing_key(), new_signing_key()
    return {
        "keys": [current.key.as_dict(private=True), retired.key.as_dict(private=True)],
        "current": current.kid,
        "retired": {retired.kid: {"retired_at": START, "verify_until": START + GRACE}},
    }


def _edit(change: Any) -> str:
    document = _valid_document()
    change(document)
    return json.dumps(document)


CORRUPT_KEY_FILES: list[Any] = [
    pytest.param("", id="empty"),
    pytest.param("not json", id="not-json"),
    pytest.param("[]", id="json-array"),
    pytest.param("{}", id="no-keys"),
    pytest.param('{"keys": [], "current": "x"}', id="empty-key-list"),
    pytest.param(_edit(lambda d: d.pop("current")), id="no-current"),
    pytest.param(_edit(lambda d: d.update(current="someone-else")), id="current-unknown"),
    pytest.param(_edit(lambda d: d.update(current=7)), id="current-not-a-string"),
    pytest.param(_edit(lambda d: d.update(retired=[])), id="retired-not-an-object"),
    pytest.param(_edit(lambda d: d["retired"].update({d["current"]: d["retired"].popitem()[1]})), id="current-retired"),
    pytest.param(_edit(lambda d: d.update(retired={})), id="retired-key-without-times"),
    pytest.param(
        _edit(lambda d: next(iter(d["retired"].values())).update(verify_until="tomorrow")), id="time-a-string"
    ),
    pytest.param(_edit(lambda d: next(iter(d["retired"].values())).update(retired_at=True)), id="time-a-bool"),
    pytest.param(_edit(lambda d: d["keys"][0].pop("d")), id="public-key-only"),
    pytest.param(_edit(lambda d: d["keys"][0].pop("kid")), id="key-without-kid"),
    pytest.param(_edit(lambda d: d["keys"][0].update(x="AAAA")), id="point-not-on-curve"),
    pytest.param(
        _edit(lambda d: d["keys"].__setitem__(0, {**ECKey.generate_key("P-384").as_dict(), "kid": d["current"]})),
        id="p384-key",
    ),
    pytest.param(
        _edit(lambda d: d["keys"].__setitem__(0, {**RSAKey.generate_key(2048).as_dict(), "kid": d["current"]})),
        id="rsa-key",
    ),
    pytest.param(_edit(lambda d: d["keys"].append("a string")), id="key-not-an-object"),
    pytest.param(_edit(lambda d: d["keys"].append(d["keys"][0])), id="duplicate-kid"),
]


@pytest.mark.parametrize("text", CORRUPT_KEY_FILES)
def test_a_corrupt_key_file_stops_start_up_and_is_left_alone(key_file: Path, text: str) -> None:
    key_file.parent.mkdir(parents=True)
    key_file.write_text(text)
    with pytest.raises(SigningKeyError) as caught:
        KeyRing.open(settings_for(key_file))
    assert key_file.read_text() == text
    assert str(key_file) in (caught.value.detail or "")
    assert not [d for d in private_members(text) if d in str(caught.value)]


def private_members(text: str) -> list[str]:
    try:
        keys = json.loads(text).get("keys", [])
    except (ValueError, AttributeError):
        return []
    return [k["d"] for k in keys if isinstance(k, dict) and "d" in k]


def test_an_unreadable_key_file_is_an_error_not_a_new_key(key_file: Path) -> None:
    key_file.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(SigningKeyError):
        KeyRing.open(settings_for(key_file))


def test_a_failed_rotation_leaves_the_ring_unchanged(key_file: Path) -> None:
    ring = KeyRing.open(settings_for(key_file))
    before = ring.current.kid
    key_file.write_text("damaged")
    with pytest.raises(SigningKeyError):
        ring.rotate()
    assert ring.current.kid == before
    assert key_file.read_text() == "damaged"


def test_a_key_file_readable_by_others_is_warned_about(key_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    KeyRing.open(settings_for(key_file))
    os.chmod(key_file, 0o644)
    with caplog.at_level(logging.WARNING, logger="portico.identity"):
        KeyRing.open(settings_for(key_file))
    assert "chmod 600" in caplog.text


def test_a_published_jwks_serves_as_verification_keys_by_kid() -> None:
    ring = KeyRing.generate(grace_s=GRACE)
    keys = JwksKeys(ring.jwks())
    found = keys.verification_key(ring.current.kid)
    assert found is not None
    assert found.as_dict(private=False) == ring.current.public_jwk()
    assert keys.verification_key("unknown") is None


def test_private_members_handed_to_a_jwks_verifier_are_dropped() -> None:
    ring = KeyRing.generate(grace_s=GRACE)
    keys = JwksKeys({"keys": [ring.current.key.as_dict(private=True)]})
    found = keys.verification_key(ring.current.kid)
    assert found is not None
    assert not found.is_private


BAD_JWKS: list[Any] = [
    pytest.param({}, id="no-keys"),
    pytest.param({"keys": "x"}, id="keys-not-a-list"),
    pytest.param({"keys": ["x"]}, id="key-not-an-object"),
    pytest.param({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}, id="key-without-kid"),
    pytest.param({"keys": [{"kty": "EC", "kid": "k", "crv": "P-256", "x": "AA"}]}, id="broken-key"),
]


@pytest.mark.parametrize("jwks", BAD_JWKS)
def test_a_malformed_jwks_is_refused(jwks: dict[str, Any]) -> None:
    with pytest.raises(SigningKeyError):
        JwksKeys(jwks)
