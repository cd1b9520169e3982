"""Code Mode: `?codemode=search_and_execute` collapses a caller's catalog into two tools, `search` and `execute`,
whose code runs in a sandbox; every tool call the code makes is an inner Exchange through the same pipeline.

`engine` is the interface every sandbox implements (JavaScript on V8 in disposable worker processes, Python on
Monty); the engines know nothing of MCP, the catalog or the pipeline: they run code with host functions and
limits, and report a typed outcome.
"""
