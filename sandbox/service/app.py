"""The reference service: a small HTTP API over PostgreSQL and Redis.

Run it with `uvicorn sandbox.service.app:app`. Configuration comes from the
environment, read once at start-up:

    DATABASE_URL        libpq URL of the database (required)
    REDIS_URL           redis:// URL of the cache (required)
    SERVICE_VERSION     version reported by /health (default "0.1.0")
    CACHE_TTL_SECONDS   lifetime of cached responses in seconds (default 30)

Routes: `GET /health` (per-dependency status; 200 only when all are ok),
`GET /metrics` (Prometheus exposition), `GET /api/skills` (read-through cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("sandbox.service")

DEFAULT_VERSION = "0.1.0"
DEFAULT_CACHE_TTL_S = 30
PROBE_TIMEOUT_S = 1.5  # per dependency, so /health answers even when one hangs
POOL_TIMEOUT_S = 2.0  # waiting for a free database connection
CONNECT_TIMEOUT_S = 2  # libpq takes whole seconds
STATEMENT_TIMEOUT_MS = 2000
REDIS_TIMEOUT_S = 1.0
POOL_MAX_SIZE = 5
CACHE_KEY = "cache:skills"
UNMATCHED_ROUTE = "<unmatched>"

DependencyStatus = Literal["ok", "down"]


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    version: str
    cache_ttl_s: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env.get(name)]
        if missing:
            raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            version=env.get("SERVICE_VERSION", DEFAULT_VERSION),
            cache_ttl_s=int(env.get("CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL_S)),
        )


@dataclass(frozen=True)
class Resources:
    settings: Settings
    pool: AsyncConnectionPool
    cache: Redis


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        return cls(
            registry=registry,
            requests=Counter(
                "http_requests_total",
                "HTTP requests handled, by route template, method and status code.",
                ["route", "method", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "http_request_duration_seconds",
                "HTTP request duration, by route template.",
                ["route"],
                registry=registry,
            ),
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT_S,
        kwargs={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "drillbook-api",
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        },
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="api",
    )
    await pool.open(wait=False)  # start even when the database is down: /health says so
    cache = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), retries=0),
    )
    app.state.resources = Resources(settings=settings, pool=pool, cache=cache)
    try:
        yield
    finally:
        await cache.aclose()
        await pool.close()


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found


Deps = Annotated[Resources, Depends(resources)]


async def _probe(check: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(check(), timeout=PROBE_TIMEOUT_S)
    except TimeoutError:
        error = f"timed out after {PROBE_TIMEOUT_S}s"
    except (psycopg.Error, RedisError) as exc:
        error = f"{type(exc).__name__}: {exc}".strip()
    status: DependencyStatus = "ok" if error is None else "down"
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"status": status, "latency_ms": latency_ms, "error": error}


async def _select_one(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _fetch_skills(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, name, enabled, rollout_percentage, max_tokens, created_at FROM skills ORDER BY id"
        )
        rows = await cur.fetchall()
    return [{**row, "created_at": row["created_at"].isoformat()} for row in rows]


def create_app() -> FastAPI:
    metrics = Metrics.create()
    app = FastAPI(title="drillbook reference service", lifespan=lifespan)

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/metrics":
            return await call_next(request)
        started = time.perf_counter()
        status = 500  # what the client sees when the handler raises
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            metrics.requests.labels(template, request.method, str(status)).inc()
            metrics.duration.labels(template).observe(time.perf_counter() - started)

    @app.get("/health")
    async def health(deps: Deps) -> JSONResponse:
        database, cache = await asyncio.gather(
            _probe(lambda: _select_one(deps.pool)), _probe(deps.cache.ping)
        )
        if database["status"] == "down":
            overall = "down"
        elif cache["status"] == "down":
            overall = "degraded"
        else:
            overall = "ok"
        body = {
            "status": overall,
            "version": deps.settings.version,
            "timestamp": datetime.now(UTC).isoformat(),
            "dependencies": {"database": database, "redis": cache},
        }
        return JSONResponse(body, status_code=200 if overall == "ok" else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/skills")
    async def list_skills(deps: Deps) -> JSONResponse:
        try:
            cached = await deps.cache.get(CACHE_KEY)
        except RedisError as exc:
            log.warning("cache read failed, serving from the database: %s", exc)
            cached = None
        if cached is not None:
            return JSONResponse({"skills": json.loads(cached), "cache": "hit"})
        try:
            skills = await _fetch_skills(deps.pool)
        except psycopg.Error as exc:
            log.error("skills query failed: %s", exc)
            return JSONResponse(
                {"error": "database unavailable", "detail": f"{type(exc).__name__}: {exc}"},
                status_code=503,
            )
        try:
            await deps.cache.set(CACHE_KEY, json.dumps(skills), ex=deps.settings.cache_ttl_s)
        except RedisError as exc:
            log.warning("cache write failed: %s", exc)
        return JSONResponse({"skills": skills, "cache": "miss"})

    return app


app = create_app()
