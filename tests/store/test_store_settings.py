"""StoreSettings: plain URLs in config, async drivers inside."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from portico.store import StoreSettings


@pytest.mark.parametrize(
    ("url", "async_url", "dialect"),
    [
        ("sqlite:///./.portico/portico.db", "sqlite+aiosqlite:///./.portico/portico.db", "sqlite"),
        ("sqlite:////var/lib/portico/p.db", "sqlite+aiosqlite:////var/lib/portico/p.db", "sqlite"),
        ("sqlite+aiosqlite:///p.db", "sqlite+aiosqlite:///p.db", "sqlite"),
        ("postgresql://portico@db.internal:5432/portico", "postgresql+asyncpg://portico@db.internal:5432/portico",
         "postgresql"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d", "postgresql"),
        ("postgresql+asyncpg://u@h:6543/d", "postgresql+asyncpg://u@h:6543/d", "postgresql"),
    ],
)  # fmt: skip
def test_plain_urls_are_served_by_the_async_driver_of_their_dialect(url: str, async_url: str, dialect: str) -> None:
    settings = StoreSettings(url=url)
    assert settings.async_url.render_as_string(hide_password=False) == async_url
    assert settings.dialect == dialect


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/d", "sqlite://", "sqlite:///:memory:", "postgresql://u@h:5432", "not a url", ""],
)
def test_unsupported_or_incomplete_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValidationError):
        StoreSettings(url=url)


def test_sqlite_path_is_the_file_and_postgres_has_none() -> None:
    assert str(StoreSettings(url="sqlite:///./x/y.db").sqlite_path) == "x/y.db"
    assert StoreSettings(url="postgresql://u@h/d").sqlite_path is None


def test_redacted_url_hides_the_password() -> None:
    settings = StoreSettings(url="postgresql://u:hunter2@h:5432/d")
    assert "hunter2" not in settings.redacted_url()
    assert "hunter2" not in repr(settings.async_url)


def test_every_store_setting_has_a_default_and_a_description() -> None:
    for name, field in StoreSettings.model_fields.items():
        assert not field.is_required(), name
        assert field.description, name
