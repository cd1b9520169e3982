"""The connection context: where a request comes from (client IP behind trusted proxies, country) and from
which device (a client certificate, checked against the device CA and the device registry).

Sits in front of the pipeline beside the authentication gate: the gate calls `ContextResolver.resolve(scope)`
for each MCP request and `apply_context(principal, context)` on the principal it built, so that policy's
`networks`, `countries` and `device` conditions (`portico.policy.model.device_state_of`, `country_of`) read
facts Portico established, never ones a client asserted. Modules: `settings` (`NetworkSettings`,
`DeviceSettings`, `TlsSettings`), `forwarded` (pure header parsers and the client-address walk), `country`
(`CountryTable`), `certs` (reading client certificates, `ChainVerifier`), `resolver` (`ContextResolver`,
`ClientContext`, `apply_context`). The TLS listener that puts client certificates in the ASGI scope is
`portico.identity.tls`; the registry is `portico.identity.devices`.

May import `portico.types`, `portico.errors`, `portico.policy.conditions` (the `DeviceState` vocabulary),
`portico.store` and `portico.identity.devices`, and third-party libraries; `settings` imports nothing of
Portico's, so `portico.config` can import it. Nothing is re-exported here.
"""
