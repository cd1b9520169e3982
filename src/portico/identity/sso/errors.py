"""Why a sign-in through an external IdP failed: one error class, one reason code per cause.

    PorticoError
    └── SsoError            a sign-in was refused or could not complete; `reason` says why (`SsoFailure`)

The reason code goes to the audit record and onto the error page (so a user can quote it to an operator);
`public` is a sentence safe to show to anyone; `detail` stays in the process log. Nothing the browser or the
IdP sent is echoed: the IdP's `error` is shown only if it is one of the codes RFC 6749 and OIDC define.

Foreign errors (httpx2 transport errors, joserfc errors, JSON decoding) become `SsoError`s in `provider`,
`idtoken` and `flow`, nowhere else.
"""

from __future__ import annotations

from enum import StrEnum

from portico.errors import DENIED, PorticoError


class SsoFailure(StrEnum):
    """Every reason a sign-in can fail. Values are stable: they are stored in audit records."""

    UNKNOWN_PROVIDER = "unknown_provider"
    BAD_REQUEST = "bad_request"  # no or malformed pending-request id, or a callback without code
    DISCOVERY_FAILED = "discovery_failed"
    DISCOVERY_ISSUER_MISMATCH = "discovery_issuer_mismatch"
    STATE_MISSING = "state_missing"
    STATE_INVALID = "state_invalid"  # no cookie for this state, or it does not open (tampered, other key)
    STATE_EXPIRED = "state_expired"
    STATE_REPLAYED = "state_replayed"
    IDP_ERROR = "idp_error"
    RESPONSE_ISSUER = "response_issuer"  # RFC 9207 `iss` in the callback names another issuer (mix-up)
    TOKEN_EXCHANGE_FAILED = "token_exchange_failed"
    ID_TOKEN_MALFORMED = "id_token_malformed"
    ID_TOKEN_ALGORITHM = "id_token_algorithm"
    ID_TOKEN_UNKNOWN_KEY = "id_token_unknown_key"
    ID_TOKEN_SIGNATURE = "id_token_signature"
    ID_TOKEN_ISSUER = "id_token_issuer"
    ID_TOKEN_AUDIENCE = "id_token_audience"
    ID_TOKEN_AZP = "id_token_azp"
    ID_TOKEN_EXPIRED = "id_token_expired"
    ID_TOKEN_NOT_YET_VALID = "id_token_not_yet_valid"
    ID_TOKEN_NONCE = "id_token_nonce"
    ID_TOKEN_ACR = "id_token_acr"
    USERINFO_FAILED = "userinfo_failed"
    SUBJECT_MISSING = "subject_missing"
    GROUPS_OVERAGE = "groups_overage"
    GROUPS_FETCH_FAILED = "groups_fetch_failed"
    GROUPS_FETCH_HOST_NOT_ALLOWED = "groups_fetch_host_not_allowed"
    GROUP_NOT_ALLOWED = "group_not_allowed"
    LOGIN_REJECTED = "login_rejected"  # the authorization server refused the identity (e.g. request expired)
    NOT_RECORDED = "not_recorded"  # the audit log could not record the sign-in: fail closed


_PUBLIC = {
    SsoFailure.UNKNOWN_PROVIDER: (404, "This sign-in option does not exist."),
    SsoFailure.BAD_REQUEST: (400, "The sign-in link is incomplete. Start again from the application."),
    SsoFailure.DISCOVERY_FAILED: (502, "The identity provider could not be reached. Try again later."),
    SsoFailure.DISCOVERY_ISSUER_MISMATCH: (502, "The identity provider's configuration does not match Portico's."),
    SsoFailure.STATE_MISSING: (400, "The sign-in could not be matched to one you started. Start again."),
    SsoFailure.STATE_INVALID: (400, "The sign-in could not be matched to one you started. Start again."),
    SsoFailure.STATE_EXPIRED: (400, "The sign-in took too long. Start again."),
    SsoFailure.STATE_REPLAYED: (400, "This sign-in was already used. Start again."),
    SsoFailure.IDP_ERROR: (400, "The identity provider did not sign you in."),
    SsoFailure.RESPONSE_ISSUER: (400, "The sign-in answer came from an unexpected identity provider."),
    SsoFailure.LOGIN_REJECTED: (400, "The sign-in could not be completed. Start again from the application."),
    SsoFailure.TOKEN_EXCHANGE_FAILED: (502, "The identity provider did not complete the sign-in."),
    SsoFailure.USERINFO_FAILED: (502, "The identity provider did not complete the sign-in."),
    SsoFailure.SUBJECT_MISSING: (502, "The identity provider did not say who you are."),
    SsoFailure.GROUPS_OVERAGE: (403, "Your account is in too many groups for Portico to read them."),
    SsoFailure.GROUPS_FETCH_FAILED: (502, "Your groups could not be read from the identity provider."),
    SsoFailure.GROUPS_FETCH_HOST_NOT_ALLOWED: (502, "Your groups could not be read from the identity provider."),
    SsoFailure.GROUP_NOT_ALLOWED: (403, "Your account is not allowed to sign in to Portico."),
    SsoFailure.NOT_RECORDED: (500, "The sign-in could not be recorded, so it was not completed."),
}  # fmt: skip
_ID_TOKEN = (502, "The identity provider's answer could not be verified.")


class SsoError(PorticoError):
    """A sign-in through an external IdP was refused or could not complete."""

    code = DENIED
    default_public = "The sign-in did not complete."

    def __init__(self, reason: SsoFailure, *, detail: str | None = None, public: str | None = None) -> None:
        status, text = _PUBLIC.get(reason, _ID_TOKEN)
        super().__init__(public or text, detail=detail)
        self.reason = reason
        self.status = status
        self.subject: str | None = None  # set once the IdP's ID token has been verified
        self.idp_error: str | None = None  # the IdP's `error` code, when it is a standard one
