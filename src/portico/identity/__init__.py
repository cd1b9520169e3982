"""Identity: who is calling, proven. The embedded authorization server's building blocks and the resource
server's token checks.

Sits before the pipeline: the ASGI auth layer (and, later, the identity stage) turns a bearer token into a
`portico.types.Principal` before any stage sees the call; the OAuth endpoints (authorize, token, revoke, JWKS,
metadata) and `portico token issue` mint tokens here. Modules: `settings` (`TokenSettings`), `keys` (the
ES256 signing `KeyRing`, JWKS), `tokens` (`TokenIssuer`, `TokenVerifier`: RFC 9068 access tokens bound to one
resource per RFC 8707), and the local-account pieces beside them (passwords, TOTP, user tables).

May import `portico.types`, `portico.errors`, `portico.keyfile`, `portico.store` and `portico.vault` (sealing
secrets at rest), and third-party libraries; never `portico.config` or the pipeline, so the config can import
the settings models. Nothing is re-exported here, so importing one module does not pull in the others.
"""
