"""Portico: one governed front door for the Model Context Protocol.

The package is layered along the request path (see docs/architecture.md): transport → pipeline stages →
catalog/upstream. `portico.types` holds the shared vocabulary every layer may import.
"""

__version__ = "0.1.0"
