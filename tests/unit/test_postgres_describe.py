"""How a PostgreSQL session is described in plans, records and terminals."""

from __future__ import annotations

from checks import postgres


def test_a_session_is_described_with_its_query_redacted_before_it_is_cut() -> None:
    """A cut at 80 characters through a password would leave its first half unrecognisable,
    and on every exit: the query is redacted first."""
    query = "SELECT 1; -- " + "x" * 37 + " ALTER ROLE app PASSWORD 'p4ss-Example-2026'"  # 80 falls in it
    backend = postgres.Backend(
        pid=42, user="app", application="psql", client=None, state="idle in transaction", query=query,
        query_seconds=1.0, transaction_seconds=90.0, wait_event=None,
    )  # fmt: skip
    described = backend.describe()
    assert "p4ss" not in described
    assert described.startswith("pid 42 (app, idle in transaction, transaction 90s): SELECT 1;")
    assert len(described.split(": ", 1)[1]) <= 80
