"""The embedded OAuth 2.1 authorization server (MCP authorization, 2025-11-25): metadata, authorize with PKCE,
sign-in and consent pages, token (code, refresh with rotation, client credentials), revocation, dynamic client
registration and Client ID Metadata Documents.

Sits beside the MCP endpoint in Portico's ASGI app (the router dispatches the paths `AuthServer.handles`); it
mints the tokens the resource server checks with `portico.identity.tokens.TokenVerifier`, whose revocation hook
is `AuthServer.is_revoked`. May import `portico.identity` (tokens, keys, users, login), `portico.store`,
`portico.audit`, `portico.errors`, starlette and httpx2; never the pipeline or `portico.config`.

Import from the modules (`.app.AuthServer`, `.settings.AuthServerSettings`): the package imports nothing, so
`portico.identity.settings` can hold `AuthServerSettings` without an import cycle through the keys.
"""
