"""Connectors to upstream MCP servers: Streamable HTTP (both eras), legacy SSE, and stdio programs Portico runs.

Sits below the pipeline: `upstream/stage.py` is the terminal stage that forwards an exchange to its server.
Each connector keeps one long-lived connection (pooled HTTP client, one legacy session, or one child process),
supervises it (reconnect/restart with backoff), and reports health. A dead, hanging or crash-looping upstream
fails only its own calls. Foreign errors (httpx, OS) are mapped to `UpstreamError`s here and nowhere else.
May import `portico.types`, `portico.errors`, `portico.config`.
"""
