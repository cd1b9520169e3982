"""A connect ticket is single use across every Portico process on the store (SQLite and PostgreSQL): two
ledgers on one database stand for two replicas."""

from __future__ import annotations

import time

import pytest

from portico.store import Store
from portico.upstream.connect_ticket import ConnectError, Ticket, TicketLedger
from tests.store.backends import pg_url, store, store_settings

__all__ = ["pg_url", "store", "store_settings"]
pytestmark = pytest.mark.anyio


async def test_a_ticket_spent_on_one_replica_is_refused_on_another(store: Store) -> None:
    now = time.time()
    ticket = Ticket("alice", "drive", now + 600, "nonce-1")
    await TicketLedger(store).spend(ticket, now)
    with pytest.raises(ConnectError) as replayed:
        await TicketLedger(store).spend(ticket, now)
    assert replayed.value.reason == "ticket_replayed"
    await TicketLedger(store).spend(Ticket("alice", "drive", now + 600, "nonce-2"), now)  # another ticket: fine


async def test_spent_tickets_are_forgotten_once_they_would_have_expired(store: Store) -> None:
    now = time.time()
    await TicketLedger(store).spend(Ticket("alice", "drive", now + 60, "old"), now)
    later = now + 120
    await TicketLedger(store).spend(Ticket("bob", "drive", later + 600, "new"), later)  # purges the expired one
    async with store.engine.connect() as conn:
        count = (await conn.exec_driver_sql("SELECT count(*) FROM connect_tickets")).scalar_one()
    assert count == 1
