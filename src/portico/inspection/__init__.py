"""Content inspection: pure detectors for tool poisoning and prompt injection.

Sits beside `catalog` and the pipeline but is not wired into either yet: `poisoning` judges an upstream's tool
definitions at catalog time (rules aligned with agent-scan E001/E002/W021, plus pinning hashes and diffs),
`injection` scores free text such as tool results. Pure functions over plain values; may import only the
standard library and `portico.inspection` itself.
"""
