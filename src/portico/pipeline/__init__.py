"""The message tier: one ordered chain of stages that every JSON-RPC request passes through.

Sits between `transport` (which turns HTTP into `Exchange`s) and the terminal stages (`catalog` listing,
`upstream` forwarding). Imports only `portico.types` and `portico.errors`; stages themselves live with the
component they belong to (`audit/stage.py`, `upstream/stage.py`, …) and are assembled in `portico.app`.
"""

from portico.pipeline.chain import Pipeline, compose
from portico.pipeline.stages import ErrorStage

__all__ = ["ErrorStage", "Pipeline", "compose"]
