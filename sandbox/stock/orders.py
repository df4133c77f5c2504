"""orders: the stock stack's own small HTTP service, which is not the reference service.

It stands for a team's ordinary service: a Spring-Boot-style health endpoint, its own
metric names and labels, and real work against PostgreSQL and Redis on every request.
Run it with `python -m sandbox.stock.orders`. Environment:

    DATABASE_URL    PostgreSQL DSN of the database holding the `orders` table (required)
    REDIS_URL       Redis URL of the cache (required)
    ORDERS_PORT     port to listen on, on 127.0.0.1 (required)
    ORDERS_HOST     address to bind (default 127.0.0.1; the compose file sets 0.0.0.0)

Routes:

    GET  /orders               the ten newest orders (PostgreSQL)
    POST /orders               {"item": str, "quantity": int}: insert one, write it to the cache
    GET  /orders/{id}          one order: the cache first (Redis GET), PostgreSQL on a miss,
                               then written to the cache
    GET  /actuator/health      {"status": "UP", "components": {"db": {...}, "redis": {...}}};
                               200 when every component is UP, 503 with "DOWN" otherwise
    GET  /metrics              Prometheus exposition

Metrics (Prometheus's conventions, but not the reference service's names):

    orders_http_requests_total{code, path}   every request: status code in `code`, route in `path`
    orders_request_seconds{path}             a histogram of request durations

A cache write that Redis refuses (for instance OOM under maxmemory with noeviction) fails
the request with 500, as a Spring cache with its default error handler does. Every
PostgreSQL statement stops after STATEMENT_TIMEOUT_MS, so a request stuck behind a lock
ends in 500 after that long.

Slow responses, for drills: SIGUSR1 makes every /orders request wait SLOW_DELAY_S before it
answers, SIGUSR2 removes the wait. The setting lives in memory only, so a restart clears it
too, as a restart clears a slowness a real process got into.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

log = logging.getLogger("sandbox.stock.orders")

POOL_MAX_SIZE = 10
POOL_TIMEOUT_S = 3.0  # waiting for a pool connection
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 10_000
REDIS_TIMEOUT_S = 1.0
HEALTH_TIMEOUT_S = 1.5  # per component, so that the health answers even when one hangs
CACHE_TTL_S = 300
SLOW_DELAY_S = 2.5
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    item        text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass
class Slowness:
    """The added delay of /orders requests, set by SIGUSR1 and SIGUSR2."""

    delay_s: float = 0.0

    def on(self, *_: Any) -> None:
        self.delay_s = SLOW_DELAY_S

    def off(self, *_: Any) -> None:
        self.delay_s = 0.0


SLOWNESS = Slowness()


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    duration: Histogram
    registry: CollectorRegistry

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            requests=Counter(
                "orders_http_requests", "HTTP requests by status code and route.", ["code", "path"],
                registry=registry,
            ),
            duration=Histogram(
                "orders_request_seconds", "HTTP request duration by route.", ["path"],
                buckets=BUCKETS, registry=registry,
            ),
            registry=registry,
        )  # fmt: skip


class Failed(Exception):
    """A request that must answer `status` with `detail`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _resources(request: Request) -> tuple[AsyncConnectionPool, Redis]:
    return request.app.state.pool, request.app.state.cache


async def _slow() -> None:
    if SLOWNESS.delay_s:
        await asyncio.sleep(SLOWNESS.delay_s)  # the injected slowness itself, not a wait


async def list_orders(request: Request) -> Response:
    pool, _ = _resources(request)
    await _slow()
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, item, quantity FROM orders ORDER BY id DESC LIMIT 10")
        rows = await cur.fetchall()
    return JSONResponse({"orders": rows})


async def create_order(request: Request) -> Response:
    pool, cache = _resources(request)
    await _slow()
    try:
        body = await request.json()
        item, quantity = str(body["item"]), int(body["quantity"])
    except (ValueError, KeyError, TypeError):
        raise Failed(400, 'expected {"item": str, "quantity": int}') from None
    if quantity < 1:
        raise Failed(400, "quantity must be 1 or more")
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO orders (item, quantity) VALUES (%s, %s) RETURNING id, item, quantity",
            (item, quantity),
        )
        order = await cur.fetchone()
    assert order is not None  # INSERT ... RETURNING returns the row
    await cache.set(f"order:{order['id']}", f"{order['item']}\t{order['quantity']}", ex=CACHE_TTL_S)
    return JSONResponse(order, status_code=201)


async def get_order(request: Request) -> Response:
    pool, cache = _resources(request)
    await _slow()
    try:
        order_id = int(request.path_params["order_id"])
    except ValueError:
        raise Failed(404, "no such order") from None
    key = f"order:{order_id}"
    cached = await cache.get(key)
    if cached is not None:
        text = cached if isinstance(cached, str) else cached.decode()  # decode_responses: a str
        item, quantity = text.split("\t")
        return JSONResponse({"id": order_id, "item": item, "quantity": int(quantity), "cached": True})
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, item, quantity FROM orders WHERE id = %s", (order_id,))
        order = await cur.fetchone()
    if order is None:
        raise Failed(404, "no such order")
    await cache.set(key, f"{order['item']}\t{order['quantity']}", ex=CACHE_TTL_S)
    return JSONResponse({**order, "cached": False})


async def _component(probe: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe(), timeout=HEALTH_TIMEOUT_S)
    except (TimeoutError, psycopg.Error, PoolTimeout, RedisError, OSError) as exc:
        return {"status": "DOWN", "details": {"error": f"{type(exc).__name__}: {exc}"[:300]}}
    return {"status": "UP"}


async def health(request: Request) -> Response:
    """Spring Boot's shape: a status, and a status per component."""
    pool, cache = _resources(request)

    async def database() -> None:
        async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")

    async def redis_ping() -> None:
        await cache.ping()

    db, redis_state = await asyncio.gather(_component(database), _component(redis_ping))
    components = {"db": db, "redis": redis_state}
    up = all(c["status"] == "UP" for c in components.values())
    return JSONResponse(
        {"status": "UP" if up else "DOWN", "components": components}, status_code=200 if up else 503
    )


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/orders", list_orders, methods=["GET"]),
    Route("/orders", create_order, methods=["POST"]),
    Route("/orders/{order_id}", get_order, methods=["GET"]),
    Route("/actuator/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]


def _route_of(request: Request) -> str:
    """The route template that matches (`/orders/{order_id}`), so that ids never become labels."""
    for route in ROUTES:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            return route.path
    return "unmatched"


class Measured:
    """ASGI middleware: count and time every request except the scrape itself."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        path = _route_of(Request(scope))
        started = time.perf_counter()
        code = 500

        async def sending(message: Any) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            measured: Metrics = self.app.state.metrics
            measured.requests.labels(code=str(code), path=path).inc()
            measured.duration.labels(path=path).observe(time.perf_counter() - started)


async def _failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Failed)
    return JSONResponse({"error": exc.detail}, status_code=exc.status)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """A dependency refused or timed out: 500, with what failed, and a line in the log."""
    log.warning("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse({"error": f"{type(exc).__name__}: {exc}"[:300]}, status_code=500)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)  # each statement commits: no transaction outlives a request


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    database_url, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    pool = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT_S,
        kwargs={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "orders",
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        },
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="orders",
    )
    await pool.open(wait=False)  # start even when the database is down: the health says so
    try:
        async with pool.connection() as conn:
            await conn.execute(SCHEMA)  # the service owns its table, as a migration on start would
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("the orders table was not checked at start-up: %s", exc)
    app.state.pool = pool
    app.state.cache = Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), retries=0),
    )
    try:
        yield
    finally:
        await app.state.cache.aclose()
        await pool.close()


def create_app() -> Measured:
    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            Failed: _failed,
            psycopg.Error: _unavailable,
            PoolTimeout: _unavailable,
            RedisError: _unavailable,
        },
    )
    app.state.metrics = Metrics.create()
    return Measured(app)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        port = int(os.environ["ORDERS_PORT"])
        os.environ["DATABASE_URL"]
        os.environ["REDIS_URL"]
    except (KeyError, ValueError) as exc:
        print(f"orders: set ORDERS_PORT, DATABASE_URL and REDIS_URL ({exc})", file=sys.stderr)
        return 2
    # Set before uvicorn starts: it installs handlers for SIGINT and SIGTERM only.
    signal.signal(signal.SIGUSR1, SLOWNESS.on)
    signal.signal(signal.SIGUSR2, SLOWNESS.off)
    host = os.environ.get("ORDERS_HOST", "127.0.0.1")
    uvicorn.run(create_app(), host=host, port=port, access_log=False, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
