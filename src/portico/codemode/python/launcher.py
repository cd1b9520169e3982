"""How the pool starts a Monty worker: through a two-line shell launcher that empties its environment.

Monty already refuses `os.environ` to sandboxed code, but its workers are children of the gateway and would
otherwise inherit every variable it has (database URLs, vault keys). The launcher gives a worker nothing of
that in case the interpreter is ever escaped: `env -i` (an empty environment), `/` as working directory, and
no core dumps (a crashing worker must not write its memory, which holds tool results, to disk).

The pool takes one executable path and appends its own arguments, so the launcher is a script written at start
into a private temporary directory (0700) and removed at close. Where it cannot run (no `/bin/sh`, a
`noexec` temporary directory) `PythonEngine` falls back to the bare binary and logs that it did.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

from pydantic_monty._binary import find_monty_binary

_SHELL = "/bin/sh"
_ENV = "/usr/bin/env"


class Launcher:
    """A launcher script for one pool; `path` is what the pool runs, `close()` deletes it."""

    def __init__(self, binary_path: str | None) -> None:
        self.binary = find_monty_binary(binary_path)
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"the monty worker binary {self.binary} is missing or not executable")
        self._directory: Path | None = None
        self.path = self.binary
        if not (os.access(_SHELL, os.X_OK) and os.access(_ENV, os.X_OK)):
            return
        directory = Path(tempfile.mkdtemp(prefix="portico-monty-"))
        script = directory / "monty"
        script.write_text(
            f'#!{_SHELL}\nulimit -c 0\ncd /\nexec {_ENV} -i {shlex.quote(os.path.abspath(self.binary))} "$@"\n'
        )
        script.chmod(0o700)
        self._directory, self.path = directory, str(script)

    @property
    def scrubbed(self) -> bool:
        """Whether workers start through the launcher (empty environment)."""
        return self._directory is not None

    def close(self) -> None:
        """Delete the launcher; workers already running are unaffected. Idempotent."""
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory, self.path = None, self.binary
