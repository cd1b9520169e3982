"""Code Mode's Python engine: model-written Python run by Monty in worker subprocesses.

Sits under `portico.codemode` (which chooses an engine and builds `Program`s from the caller's catalog) and
implements `portico.codemode.engine.Engine`; below it are only `pydantic_monty` and its `monty` worker binary.

* `engine`: `PythonEngine`, the pool, one fresh session per run, limits, the wall-clock deadline.
* `bridge`: one run's host side: the `codemode` functions (call counting, `ToolError`), the print sink.
* `outcome`: Monty's exceptions → `RunError` (the one mapping boundary), model line numbers.
* `values`: sandbox values → JSON (results, host-call arguments).
* `launcher`: starts each worker with an empty environment, `/` as working directory and no core dumps.
* `stubs`: JSON Schema → the Python stubs the model reads and the engine type-checks against.

May import `portico.codemode.engine`, `portico.errors` and `pydantic_monty`; nothing else of the gateway.
"""

from portico.codemode.python.engine import PythonEngine

__all__ = ["PythonEngine"]
