"""`portico demo`: sample upstream servers and a config that serves them, so a new user meets every feature.

The servers are ordinary MCP servers built with the official SDK; Portico runs `notes` itself (stdio) and
`portico demo` starts `tickets` (Streamable HTTP) and `weather` (legacy SSE) as local processes, as remote
servers would be. Nothing here is imported by the gateway itself.
"""
