"""Small, real MCP servers used as upstream fixtures in Portico's tests.

Every module here is runnable as ``python -m tests.upstreams.<name> --transport http|stdio|sse
[--port 0] [--host 127.0.0.1]``; over HTTP or SSE it prints exactly one line
``LISTENING <url>`` on stdout once it accepts connections. ``launch.launched`` wraps that.
"""
