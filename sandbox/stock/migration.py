"""A migration that holds a lock: the stock stack's held-lock fault, made with plain SQL.

Run with `python -m sandbox.stock.migration` (DATABASE_URL names the orders database). It
opens a transaction, takes `LOCK TABLE orders IN ACCESS EXCLUSIVE MODE` and keeps the
transaction open until it is stopped (SIGTERM) or its session is terminated
(`pg_terminate_backend`, a responder's mitigation); it exits then, and the lock goes
with the session. Every request of the orders service that touches the table waits
behind it, visible in pg_stat_activity as wait_event_type Lock, blocked by this
session (application_name orders-migration).
"""

from __future__ import annotations

import logging
import os
import select
import sys

import psycopg

log = logging.getLogger("sandbox.stock.migration")

APPLICATION_NAME = "orders-migration"
LOCK_TIMEOUT_MS = 10_000  # waiting for the lock behind the service's own short transactions
WATCH_INTERVAL_S = 5.0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("migration: set DATABASE_URL to the orders database's DSN", file=sys.stderr)
        return 2
    try:
        conn = psycopg.connect(
            dsn,
            connect_timeout=5,
            application_name=APPLICATION_NAME,
            options=f"-c lock_timeout={LOCK_TIMEOUT_MS}",
        )
        conn.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # opens the transaction
    except psycopg.Error as exc:
        print(f"migration: could not lock orders: {exc}", file=sys.stderr)
        return 1
    log.info("holding ACCESS EXCLUSIVE on orders (backend pid %d) until stopped", conn.info.backend_pid)
    # Wait on the session's socket: it turns readable only when the server says something,
    # which inside an idle transaction means the session is being ended.
    while True:
        readable, _, _ = select.select([conn.fileno()], [], [], WATCH_INTERVAL_S)
        if readable:
            log.info("the server ended the session; the lock is gone")
            return 0


if __name__ == "__main__":
    sys.exit(main())
