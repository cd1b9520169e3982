"""The audit log: every exchange recorded in an append-only, hash-chained log, verifiable and exportable.

Sits at the outer edge of the message tier: `AuditStage` is the first stage of the pipeline, `AuditLog` spools
and batches records into `portico.store`. Imports `portico.types`, `portico.errors` and `portico.store`; nothing
else of Portico's. `verify`, `tail` and `export` read the log back (for `portico audit …`).
"""

from portico.audit.log import AuditError, AuditLog
from portico.audit.model import AuditRecord
from portico.audit.settings import AuditSettings
from portico.audit.stage import AuditStage
from portico.audit.verify import ChainProblem, ProblemKind, VerifyReport

# `verify`, `tail` and `export` stay in `portico.audit.verify`: re-exported here, the function `verify` would
# shadow its own module.

__all__ = [
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "AuditSettings",
    "AuditStage",
    "ChainProblem",
    "ProblemKind",
    "VerifyReport",
]
