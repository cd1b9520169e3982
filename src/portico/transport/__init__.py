"""The client-facing MCP endpoint: `/mcp` (the portal) and `/servers/{id}/mcp` (one server).

Turns Streamable HTTP requests of either protocol era into `Exchange`s, runs them through the pipeline, and
writes replies as JSON or as an SSE stream (when the exchange sends progress, logs or requests on the way).
Above it: the ASGI app (`portico.app`). Below it: the pipeline. Imports `portico.types`, `portico.errors`,
`portico.config`, and the catalog for Mcp-Param schemas and change events.
"""
