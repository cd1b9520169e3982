"""Signing in to Portico through external OpenID Connect identity providers (Entra ID, Okta, Google, Keycloak…).

Sits beside the embedded authorization server (`portico.identity.authserver`), which mounts `app.SsoLogin` for
`/login/sso/…`, shows its `links()` on the login page and receives each verified `LoginIdentity` through the
`on_login` callback. Below it: httpx2 (calls to the IdP), authlib (OAuth 2.0 client pieces: authorization URL,
PKCE, token request and client authentication) and joserfc (ID token signatures).

Modules, top down: `app` (ASGI endpoints, cookies, error pages, audit) → `flow` (one sign-in: begin, complete)
→ `provider` (discovery and JWKS, cached), `idtoken` (ID token checks), `claims` (claims → identity, groups),
`state` (the sealed state cookie) → `settings`, `errors`.

May import `portico.errors`, `portico.audit.log` (for `AuditLog`), `portico.identity.login` and third-party
libraries; never `portico.config` or the authorization server. Nothing is re-exported here.
"""
