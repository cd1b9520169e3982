"""The `store:` section of `portico.yaml`: which database holds Portico's state.

Users write plain URLs (`sqlite:///./.portico/portico.db`, `postgresql://user@host:5432/portico`); the async
driver (aiosqlite, asyncpg) is an implementation detail chosen here, so a driver swap never touches config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Dialect = Literal["sqlite", "postgresql"]

# Scheme as written by the user → (dialect, async driver). Explicit async forms are accepted as they are.
_SCHEMES: dict[str, tuple[Dialect, str]] = {
    "sqlite": ("sqlite", "sqlite+aiosqlite"),
    "sqlite+aiosqlite": ("sqlite", "sqlite+aiosqlite"),
    "postgresql": ("postgresql", "postgresql+asyncpg"),
    "postgres": ("postgresql", "postgresql+asyncpg"),
    "postgresql+asyncpg": ("postgresql", "postgresql+asyncpg"),
}


class StoreSettings(BaseModel):
    """Where Portico keeps users, pins and the audit log: an embedded SQLite file or a shared PostgreSQL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        default="sqlite:///./.portico/portico.db",
        description="Database URL: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or "
        "`postgresql://user[:password]@host:port/database`. The async driver is chosen automatically.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only; very verbose).")
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="SQLite only: how long a writer waits for a lock before failing."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (expected sqlite:///path or postgresql://user@host/db)") from None
        if url.drivername not in _SCHEMES:
            raise ValueError(f"unsupported database {url.drivername!r} (expected sqlite or postgresql)")
        if _SCHEMES[url.drivername][0] == "sqlite" and url.database in (None, "", ":memory:"):
            # An in-memory database would vanish between pooled connections and lose the audit log.
            raise ValueError("SQLite needs a file path, e.g. sqlite:///./.portico/portico.db")
        if _SCHEMES[url.drivername][0] == "postgresql" and not url.database:
            raise ValueError("PostgreSQL URL needs a database name, e.g. postgresql://user@host:5432/portico")
        return value

    @property
    def dialect(self) -> Dialect:
        """`"sqlite"` or `"postgresql"`."""
        return _SCHEMES[make_url(self.url).drivername][0]

    @property
    def async_url(self) -> URL:
        """The URL with its async driver (`sqlite+aiosqlite`, `postgresql+asyncpg`)."""
        url = make_url(self.url)
        return url.set(drivername=_SCHEMES[url.drivername][1])

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for SQLite (relative paths are relative to the working directory), else None."""
        url = make_url(self.url)
        if self.dialect != "sqlite" or url.database is None:
            return None
        return Path(url.database)

    def redacted_url(self) -> str:
        """The URL with any password masked, for logs and error messages."""
        return make_url(self.url).render_as_string(hide_password=True)
