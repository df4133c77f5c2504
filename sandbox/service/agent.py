"""The chaos agent: plays the misbehaving neighbours that some faults need.

Run it with `uvicorn sandbox.service.agent:app`. Environment:

    DATABASE_URL   the application's database, as the application role (required)
    API_URL        the reference service (required)
    CHAOS_TOKEN    token of every route but /health, X-Chaos-Token header (required)
    CONTROL_ALLOW_FROM  networks allowed to reach it (default loopback)

Routes: `GET /faults` (what is active), `PUT /faults/{name}` {"active": bool},
`GET /health`. The neighbours:

    db-pool-exhausted    a report job that leaks connections: it opens idle-in-transaction
                         sessions until PostgreSQL has only the API pool's room to grow and
                         two ordinary slots left
    db-lock-contention   a migration that holds a SHARE ROW EXCLUSIVE lock on usage_logs:
                         reads go on, every insert waits
    suspicious-access    a leaked integration key reading one user after another from an
                         unknown address, about 10 requests a second

Runbook mitigations may kill these sessions (pg_terminate_backend) or revoke the key;
the agent tolerates both and `active: false` tidies up whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.service.control import chaos_refusal, control_networks
from sandbox.service.corpus import (
    API_APPLICATION_NAME,
    API_POOL_MAX_SIZE,
    SUPPORT_TOOL_USER_ID,
    SUSPICIOUS_ADDRESS,
    USERS,
    api_key,
)

log = logging.getLogger("sandbox.agent")

CONNECT_TIMEOUT_S = 2
# Left free beyond the API pool's room to grow: the responder's session and one more (a
# monitoring reconnect, a health check), so that the runbook can always look and act.
SPARE_SLOTS = 2
ACCESS_INTERVAL_S = 0.1
FAULTS = ("db-pool-exhausted", "db-lock-contention", "suspicious-access")


@dataclass
class Neighbours:
    database_url: str
    api_url: str
    leaked: list[psycopg.AsyncConnection[Any]] = field(default_factory=list)
    locker: psycopg.AsyncConnection[Any] | None = None
    prowler: asyncio.Task[None] | None = None
    reads: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "db-pool-exhausted": {"active": bool(self.leaked), "connections": len(self.leaked)},
            "db-lock-contention": {"active": self.locker is not None},
            "suspicious-access": {"active": self.prowler is not None, "requests": self.reads},
        }

    async def _connect(self, application_name: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.database_url, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name
        )

    async def leak(self) -> None:
        if self.leaked:
            return
        probe = await self._connect("drillbook-report-job")
        async with probe.cursor() as cur:
            await cur.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - count(*) FILTER (WHERE backend_type = 'client backend'),"
                " count(*) FILTER (WHERE application_name = %s)"
                " FROM pg_stat_activity",
                (API_APPLICATION_NAME,),
            )
            row = await cur.fetchone()
        free, api_sessions = (int(row[0]), int(row[1])) if row else (0, 0)
        # The API's pool may grow after this moment (min_size 1): leave it that room too.
        room = max(0, API_POOL_MAX_SIZE - api_sessions) + SPARE_SLOTS
        self.leaked.append(probe)  # its transaction stays open: the first leaked session
        for _ in range(max(0, free - room)):
            try:
                conn = await self._connect("drillbook-report-job")
            except psycopg.OperationalError as exc:
                log.warning("stopped leaking at %d connections: %s", len(self.leaked), exc)
                break
            await conn.execute("SELECT count(*) FROM usage_logs")  # opens a transaction, never ended
            self.leaked.append(conn)
        log.warning("holding %d idle-in-transaction connections", len(self.leaked))

    async def release(self) -> None:
        leaked, self.leaked = self.leaked, []
        for conn in leaked:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def lock(self) -> None:
        if self.locker is not None:
            return
        conn = await self._connect("drillbook-migration")
        await conn.execute("LOCK TABLE usage_logs IN SHARE ROW EXCLUSIVE MODE")
        self.locker = conn
        log.warning("holding a SHARE ROW EXCLUSIVE lock on usage_logs")

    async def unlock(self) -> None:
        conn, self.locker = self.locker, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _prowl(self) -> None:
        headers = {"X-API-Key": api_key(SUPPORT_TOOL_USER_ID), "X-Forwarded-For": SUSPICIOUS_ADDRESS}
        async with httpx.AsyncClient(base_url=self.api_url, timeout=5.0, headers=headers) as client:
            user = 0
            while True:
                user = user % USERS + 1
                with contextlib.suppress(httpx.HTTPError):
                    await client.get("/api/usage", params={"user_id": user, "hours": 24 * 30})
                self.reads += 1
                await asyncio.sleep(ACCESS_INTERVAL_S)  # the attacker's pace

    def prowl(self) -> None:
        if self.prowler is None:
            self.prowler = asyncio.create_task(self._prowl())
            log.warning("suspicious access started from %s", SUSPICIOUS_ADDRESS)

    async def stop_prowling(self) -> None:
        task, self.prowler = self.prowler, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_app() -> Starlette:
    env = os.environ
    missing = [name for name in ("DATABASE_URL", "API_URL", "CHAOS_TOKEN") if not env.get(name)]
    if missing:
        raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
    token = env["CHAOS_TOKEN"]
    allowed = control_networks(os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    neighbours = Neighbours(database_url=env["DATABASE_URL"], api_url=env["API_URL"])

    def refused(request: Request) -> JSONResponse | None:
        if (refusal := chaos_refusal(request, token=token, networks=allowed)) is not None:
            return refusal
        return None

    async def faults(request: Request) -> JSONResponse:
        return refused(request) or JSONResponse(neighbours.public())

    async def fault(request: Request) -> JSONResponse:
        if (refusal := refused(request)) is not None:
            return refusal
        name = request.path_params["name"]
        if name not in FAULTS:
            return JSONResponse({"error": f"unknown fault {name}; expected one of {FAULTS}"}, status_code=404)
        active = bool((await request.json()).get("active"))
        before = neighbours.public()[name]
        try:
            match name, active:
                case "db-pool-exhausted", True:
                    await neighbours.leak()
                case "db-pool-exhausted", False:
                    await neighbours.release()
                case "db-lock-contention", True:
                    await neighbours.lock()
                case "db-lock-contention", False:
                    await neighbours.unlock()
                case "suspicious-access", True:
                    neighbours.prowl()
                case "suspicious-access", False:
                    await neighbours.stop_prowling()
        except psycopg.Error as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503)
        return JSONResponse({"before": before, "after": neighbours.public()[name]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await neighbours.stop_prowling()
            await neighbours.unlock()
            await neighbours.release()

    return Starlette(
        routes=[
            Route("/faults", faults),
            Route("/faults/{name}", fault, methods=["PUT"]),
            Route("/health", health),
        ],
        lifespan=lifespan,
    )


app = create_app()
