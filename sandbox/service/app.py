"""The reference service: an "analysis API" over PostgreSQL, Redis and an upstream LLM provider.

Run it with `uvicorn sandbox.service.app:app`. Configuration comes from the
environment, read once at start-up:

    DATABASE_URL              libpq URL of the database (required)
    REDIS_URL                 redis:// URL of the cache and the feature flags (required)
    UPSTREAM_URL              base URL of the LLM provider (required)
    ADMIN_TOKEN               bearer token of the /admin routes (required)
    CHAOS_TOKEN               token of the /chaos route, X-Chaos-Token header (required)
    SERVICE_VERSION           version reported by /health (default "0.2.0")
    CACHE_TTL_SECONDS         lifetime of cached analyses, ± 25 % jitter (default 300)
    UPSTREAM_TIMEOUT_SECONDS  per upstream call (default 5)
    ROLLOUT_DEFAULT_PERCENTAGE  rollout when the flag is unset or unreadable (default 10)
    CONTROL_ALLOW_FROM        networks allowed to reach /admin and /chaos (default loopback)
    TRUSTED_PROXIES           peers whose X-Forwarded-For is believed (default loopback)

Routes:
    GET  /health          per-dependency status and the circuit; 200 only when "ok"
    GET  /metrics         Prometheus exposition
    POST /api/analyze     {"skill", "input"} with an API key (X-API-Key or Bearer)
    GET  /api/usage       ?user_id=&hours= usage aggregates (own user, or any with read:any)
    GET  /api/skills      the skill catalogue (read-through cache)
    /admin/...            what mitigations change (see sandbox docs and CONTRACTS)
    GET|PUT /chaos        error share and added latency, for the fault catalogue

The path of an analysis: authenticate the key, pick the skill (the rollout flag sends a
share of "summarise" to "summarise-v2"), look in the cache, call the upstream through a
circuit breaker (open after 3 consecutive failures; a degraded extractive answer while
open), record usage and the audit trail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sandbox.service.control import LOOPBACK, allows, control_networks, networks
from sandbox.service.corpus import (
    API_APPLICATION_NAME,
    API_POOL_MAX_SIZE,
    DOCUMENTS,
    ROLLOUT_SKILL,
    ROLLOUT_STABLE,
    SKILL_WEIGHTS,
    key_digest,
)

log = logging.getLogger("sandbox.service")

DEFAULT_VERSION = "0.2.0"
DEFAULT_CACHE_TTL_S = 300
TTL_JITTER = 0.25  # each entry lives ttl * (1 ± jitter): no synchronised expiry waves
DEFAULT_UPSTREAM_TIMEOUT_S = 5.0
DEFAULT_ROLLOUT = 10
PROBE_TIMEOUT_S = 1.5  # per dependency, so /health answers even when one hangs
POOL_TIMEOUT_S = 2.0  # waiting for a free database connection
CONNECT_TIMEOUT_S = 2  # libpq takes whole seconds
STATEMENT_TIMEOUT_MS = 2000
REDIS_TIMEOUT_S = 1.0
BREAKER_THRESHOLD = 3  # consecutive failures that open the circuit
BREAKER_COOLDOWN_S = 5.0  # open -> half-open
BASELINE_REFRESH_S = 60.0
SKILLS_CACHE_KEY = "cache:skills"
ROLLOUT_FLAG_KEY = f"flag:rollout:{ROLLOUT_SKILL}"
UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)

DependencyStatus = Literal["ok", "down"]
CircuitState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    upstream_url: str
    admin_token: str
    chaos_token: str
    version: str
    cache_ttl_s: int
    upstream_timeout_s: float
    rollout_default: int
    control_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        required = ("DATABASE_URL", "REDIS_URL", "UPSTREAM_URL", "ADMIN_TOKEN", "CHAOS_TOKEN")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            upstream_url=env["UPSTREAM_URL"].rstrip("/"),
            admin_token=env["ADMIN_TOKEN"],
            chaos_token=env["CHAOS_TOKEN"],
            version=env.get("SERVICE_VERSION", DEFAULT_VERSION),
            cache_ttl_s=int(env.get("CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL_S)),
            upstream_timeout_s=float(env.get("UPSTREAM_TIMEOUT_SECONDS", DEFAULT_UPSTREAM_TIMEOUT_S)),
            rollout_default=int(env.get("ROLLOUT_DEFAULT_PERCENTAGE", DEFAULT_ROLLOUT)),
            control_networks=control_networks(env),
            trusted_proxies=networks(env.get("TRUSTED_PROXIES", LOOPBACK)),
        )


class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failures -> half-open after `cooldown_s`.

    An operator may force it open (always the fallback) or closed (always the upstream);
    "auto" hands it back to the failure count.
    """

    def __init__(self, *, threshold: int = BREAKER_THRESHOLD, cooldown_s: float = BREAKER_COOLDOWN_S) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at = 0.0
        self._state: CircuitState = "closed"
        self.forced: Literal["open", "closed"] | None = None

    @property
    def state(self) -> CircuitState:
        if self.forced is not None:
            return self.forced
        if self._state == "open" and time.monotonic() - self.opened_at >= self.cooldown_s:
            self._state = "half-open"
        return self._state

    def allows(self) -> bool:
        return self.state != "open"

    def succeeded(self) -> None:
        self.failures = 0
        self._state = "closed"

    def failed(self) -> None:
        self.failures += 1
        if self._state == "half-open" or self.failures >= self.threshold:
            self._state = "open"
            self.opened_at = time.monotonic()

    def force(self, wanted: Literal["open", "closed", "auto"]) -> None:
        self.forced = None if wanted == "auto" else wanted
        if wanted == "auto":
            self.failures = 0
            self._state = "closed"

    def public(self) -> dict[str, Any]:
        return {"state": self.state, "forced": self.forced is not None}


@dataclass
class Runtime:
    """What the admin and chaos routes change while the service runs."""

    cache_ttl_s: int
    upstream_timeout_s: float
    error_rate: float = 0.0
    latency_s: float = 0.0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)


@dataclass(frozen=True)
class Resources:
    settings: Settings
    pool: AsyncConnectionPool
    cache: Redis
    upstream: httpx.AsyncClient
    runtime: Runtime


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    pool_connections: Gauge
    pool_max: Gauge
    pool_waiting: Gauge
    cache_requests: Counter
    circuit_state: Gauge
    circuit_forced: Gauge
    fallbacks: Counter
    upstream_requests: Counter
    upstream_duration: Histogram
    tokens: Counter
    cost: Counter
    calls: Counter
    cost_baseline: Gauge
    rollout: Gauge
    skill_requests: Counter
    key_requests: Counter
    cross_user_reads: Counter

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry()
        ProcessCollector(registry=r)
        return cls(
            registry=r,
            requests=Counter(
                "http_requests_total",
                "HTTP requests by route template, method and status.",
                ["route", "method", "status"],
                registry=r,
            ),
            duration=Histogram(
                "http_request_duration_seconds",
                "HTTP request duration by route template.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            pool_connections=Gauge(
                "db_pool_connections", "Database pool connections by state.", ["state"], registry=r
            ),
            pool_max=Gauge("db_pool_max_connections", "Database pool size limit.", registry=r),
            pool_waiting=Gauge("db_pool_waiting", "Requests waiting for a pool connection.", registry=r),
            cache_requests=Counter(
                "cache_requests_total", "Analysis cache look-ups by result.", ["result"], registry=r
            ),
            circuit_state=Gauge(
                "circuit_breaker_state", "Upstream circuit: 0 closed, 0.5 half-open, 1 open.", registry=r
            ),
            circuit_forced=Gauge(
                "circuit_breaker_forced", "1 when an operator forced the circuit.", registry=r
            ),
            fallbacks=Counter(
                "fallback_responses",
                "Degraded answers served instead of the upstream's.",
                ["skill"],
                registry=r,
            ),
            upstream_requests=Counter(
                "upstream_requests", "Calls to the upstream provider by outcome.", ["outcome"], registry=r
            ),
            upstream_duration=Histogram(
                "upstream_request_duration_seconds",
                "Upstream call duration.",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            tokens=Counter("llm_tokens", "Tokens billed by the upstream.", ["skill", "kind"], registry=r),
            cost=Counter("llm_cost_usd", "Cost of upstream calls in US dollars.", ["skill"], registry=r),
            calls=Counter("llm_calls", "Upstream calls that consumed tokens.", ["skill"], registry=r),
            cost_baseline=Gauge(
                "llm_cost_baseline_usd_per_call",
                "Historical cost of one upstream call (usage_logs older than an hour).",
                ["skill"],
                registry=r,
            ),
            rollout=Gauge(
                "skill_rollout_percentage",
                f"Share of {ROLLOUT_STABLE} requests sent to {ROLLOUT_SKILL}.",
                registry=r,
            ),
            skill_requests=Counter(
                "skill_requests",
                "Analyses by effective skill and outcome (ok, fallback, error).",
                ["skill", "outcome"],
                registry=r,
            ),
            key_requests=Counter(
                "api_key_requests", "Authenticated requests by key prefix.", ["key_prefix"], registry=r
            ),
            cross_user_reads=Counter(
                "cross_user_reads",
                "Reads of another user's data, by key prefix.",
                ["key_prefix"],
                registry=r,
            ),
        )


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)  # each statement commits: no transaction outlives a request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the log
    settings = Settings.from_env()
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=API_POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT_S,
        kwargs={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": API_APPLICATION_NAME,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        },
        configure=_configure,
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
    upstream = httpx.AsyncClient(base_url=settings.upstream_url, timeout=settings.upstream_timeout_s)
    runtime = Runtime(cache_ttl_s=settings.cache_ttl_s, upstream_timeout_s=settings.upstream_timeout_s)
    deps = Resources(settings=settings, pool=pool, cache=cache, upstream=upstream, runtime=runtime)
    app.state.resources = deps
    baseline = asyncio.create_task(_refresh_baseline(deps, app.state.metrics))
    try:
        yield
    finally:
        baseline.cancel()
        await upstream.aclose()
        await cache.aclose()
        await pool.close()


async def _refresh_baseline(deps: Resources, metrics: Metrics) -> None:
    """Keep `llm_cost_baseline_usd_per_call` at the historical average, per skill."""
    while True:
        try:
            async with deps.pool.connection() as conn, conn.cursor() as cur:
                await cur.execute(
                    "SELECT skill, avg(cost_usd) FROM usage_logs"
                    " WHERE success AND NOT cached AND tokens_output > 0"
                    " AND created_at < now() - interval '1 hour' GROUP BY skill"
                )
                baseline = {skill: float(cost) for skill, cost in await cur.fetchall()}
        except (psycopg.Error, OSError) as exc:
            log.warning("cost baseline not refreshed: %s", exc)
            await asyncio.sleep(2.0)
            continue
        # the rollout candidate has no history: it costs what the skill it replaces costs
        if ROLLOUT_STABLE in baseline:
            baseline.setdefault(ROLLOUT_SKILL, baseline[ROLLOUT_STABLE])
        for skill, cost in baseline.items():
            metrics.cost_baseline.labels(skill).set(cost)
        await asyncio.sleep(BASELINE_REFRESH_S)


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found


Deps = Annotated[Resources, Depends(resources)]


def client_address(request: Request, settings: Settings) -> str:
    """The caller: the first X-Forwarded-For hop when a trusted proxy sent it, else the peer."""
    peer = request.client.host if request.client else "0.0.0.0"  # noqa: S104  # not a bind
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and allows(peer, settings.trusted_proxies):
        first = forwarded.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            return peer
    return peer


def _require_control(request: Request, settings: Settings) -> None:
    peer = request.client.host if request.client else ""
    if not allows(peer, settings.control_networks):
        raise HTTPException(403, "control routes answer on the loopback interface only")


def require_admin(
    request: Request, deps: Deps, authorization: Annotated[str | None, Header()] = None
) -> None:
    _require_control(request, deps.settings)
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(authorization[7:].strip(), deps.settings.admin_token):
        raise HTTPException(403, "wrong admin token")


def require_chaos(
    request: Request, deps: Deps, x_chaos_token: Annotated[str | None, Header()] = None
) -> None:
    _require_control(request, deps.settings)
    if not x_chaos_token:
        raise HTTPException(401, "missing X-Chaos-Token")
    if not hmac.compare_digest(x_chaos_token, deps.settings.chaos_token):
        raise HTTPException(403, "wrong chaos token")


Admin = Depends(require_admin)
Chaos = Depends(require_chaos)


@dataclass(frozen=True)
class Caller:
    key_id: int
    key_prefix: str
    user_id: int
    scopes: tuple[str, ...]


async def authenticate(deps: Deps, request: Request) -> Caller | None:
    header = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization") or ""
    raw = header or (auth[7:].strip() if auth.lower().startswith("bearer ") else "")
    if not raw:
        return None
    async with deps.pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            "UPDATE api_keys AS k SET last_used_at = now() FROM users AS u"
            " WHERE k.key_sha256 = %s AND k.revoked_at IS NULL AND u.id = k.user_id AND NOT u.disabled"
            " RETURNING k.id, k.prefix, k.user_id, k.scopes",
            (key_digest(raw),),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return Caller(key_id=row[0], key_prefix=row[1], user_id=row[2], scopes=tuple(row[3]))


async def audit(
    deps: Resources, request: Request, *, caller: Caller | None, user_id: int | None, status: int
) -> None:
    """One audit row per API request; a database outage must not hide the answer."""
    try:
        async with deps.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_logs (user_id, api_key_id, method, path, status, address)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    user_id,
                    caller.key_id if caller else None,
                    request.method,
                    request.url.path,
                    status,
                    client_address(request, deps.settings),
                ),
            )
    except (psycopg.Error, TimeoutError) as exc:
        log.warning("audit row not written: %s", exc)


async def _probe(check: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(check(), timeout=PROBE_TIMEOUT_S)
    except TimeoutError:
        error = f"timed out after {PROBE_TIMEOUT_S}s"
    except (psycopg.Error, RedisError, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}".strip()
    status: DependencyStatus = "ok" if error is None else "down"
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"status": status, "latency_ms": latency_ms, "error": error}


async def _select_one(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _upstream_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", timeout=PROBE_TIMEOUT_S)
    if response.status_code != 200:
        raise httpx.HTTPStatusError(
            f"HTTP {response.status_code}: {response.text[:120]}", request=response.request, response=response
        )


async def _skills(pool: AsyncConnectionPool) -> dict[str, dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, name, description, model, enabled, max_tokens, cost_per_1k_tokens, created_at"
            " FROM skills ORDER BY id"
        )
        rows = await cur.fetchall()
    return {row["name"]: row for row in rows}


async def rollout_percentage(deps: Resources) -> int:
    try:
        value = await deps.cache.get(ROLLOUT_FLAG_KEY)
    except RedisError:
        return deps.settings.rollout_default
    return deps.settings.rollout_default if value is None else int(value)


class AnalyzeBody(BaseModel):
    skill: str = Field(min_length=1, max_length=64)
    input: str = Field(min_length=1, max_length=20_000)


class RolloutBody(BaseModel):
    percentage: int = Field(ge=0, le=100)


class SkillBody(BaseModel):
    enabled: bool | None = None
    max_tokens: int | None = Field(default=None, gt=0)


class CircuitBody(BaseModel):
    state: Literal["open", "closed", "auto"]


class CacheBody(BaseModel):
    ttl_seconds: int = Field(ge=1)


class WarmBody(BaseModel):
    skills: list[str]


class UpstreamBody(BaseModel):
    timeout_seconds: float = Field(gt=0)


class ChaosBody(BaseModel):
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_ms: int | None = Field(default=None, ge=0, le=60_000)


@dataclass(frozen=True)
class Outcome:
    """What the upstream (or the fallback) gave for one analysis."""

    result: dict[str, Any]
    outcome: Literal["ok", "fallback", "error"]
    tokens_input: int = 0
    tokens_output: int = 0
    error_type: str | None = None
    status: int = 200


def _fallback(skill: str, text: str, error_type: str) -> Outcome:
    first = text.split(".")[0][:200]
    return Outcome(
        result={"skill": skill, "output": f"(degraded) {first}.", "degraded": True},
        outcome="fallback",
        error_type=error_type,
    )


async def call_upstream(deps: Resources, metrics: Metrics, skill: dict[str, Any], text: str) -> Outcome:
    breaker = deps.runtime.breaker
    name = skill["name"]
    if not breaker.allows():
        return _fallback(name, text, "circuit_open")
    started = time.perf_counter()
    try:
        response = await deps.upstream.post(
            "/v1/complete",
            json={"model": skill["model"], "input": text, "max_tokens": skill["max_tokens"], "skill": name},
            timeout=deps.runtime.upstream_timeout_s,
        )
    except httpx.TimeoutException:
        metrics.upstream_requests.labels("timeout").inc()
        breaker.failed()
        return _fallback(name, text, "upstream_timeout")
    except httpx.HTTPError as exc:
        log.warning("upstream unreachable: %s", exc)
        metrics.upstream_requests.labels("error").inc()
        breaker.failed()
        return _fallback(name, text, "upstream_error")
    finally:
        metrics.upstream_duration.observe(time.perf_counter() - started)
    if response.status_code == 429:
        metrics.upstream_requests.labels("rate_limited").inc()
        return _fallback(name, text, "rate_limited")  # back off; not a failure of the provider
    if 400 <= response.status_code < 500:
        metrics.upstream_requests.labels("error").inc()
        try:
            detail = response.json().get("error", {})
        except ValueError:
            detail = {"body": response.text[:200]}
        return Outcome(
            result={"error": "the upstream rejected the request", "detail": detail},
            outcome="error",
            error_type="invalid_request",
            status=502,
        )
    if response.status_code != 200:
        metrics.upstream_requests.labels("error").inc()
        breaker.failed()
        return _fallback(name, text, "upstream_error")
    metrics.upstream_requests.labels("ok").inc()
    breaker.succeeded()
    body = response.json()
    usage = body.get("usage", {})
    return Outcome(
        result={"skill": name, "output": body.get("output", ""), "degraded": False},
        outcome="ok",
        tokens_input=int(usage.get("input_tokens", 0)),
        tokens_output=int(usage.get("output_tokens", 0)),
    )


def _ttl(seconds: int) -> int:
    """`seconds` with jitter, at least 1."""
    return max(1, round(seconds * random.uniform(1 - TTL_JITTER, 1 + TTL_JITTER)))  # noqa: S311


def _cache_key(skill: Mapping[str, Any], text: str) -> str:
    """The key of an analysis: the skill and the request parameters that shape its answer."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"cache:analyze:{skill['name']}:{skill['model']}:{skill['max_tokens']}:{digest}"


def create_app() -> FastAPI:
    metrics = Metrics.create()
    # Known label values start at 0, so that rate() counts the first event after a fault.
    for outcome in ("ok", "error", "rate_limited", "timeout"):
        metrics.upstream_requests.labels(outcome)
    for result in ("hit", "miss"):
        metrics.cache_requests.labels(result)
    for skill in (*SKILL_WEIGHTS, ROLLOUT_SKILL):
        metrics.fallbacks.labels(skill)
        for outcome in ("ok", "fallback", "error"):
            metrics.skill_requests.labels(skill, outcome)
    app = FastAPI(title="drillbook reference service", lifespan=lifespan)
    app.state.metrics = metrics

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/metrics":
            return await call_next(request)
        started = time.perf_counter()
        status = 500  # what the client sees when the handler raises
        try:
            runtime: Runtime | None = getattr(getattr(request.app.state, "resources", None), "runtime", None)
            if runtime is not None and runtime.latency_s and request.url.path.startswith("/api/"):
                await asyncio.sleep(runtime.latency_s)  # the injected latency fault
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            metrics.requests.labels(template, request.method, str(status)).inc()
            metrics.duration.labels(template).observe(time.perf_counter() - started)

    def chaos_error(deps: Resources) -> bool:
        return deps.runtime.error_rate > 0 and random.random() < deps.runtime.error_rate  # noqa: S311

    # -- health and metrics ----------------------------------------------------------------

    @app.get("/health")
    async def health(deps: Deps) -> JSONResponse:
        database, cache, upstream = await asyncio.gather(
            _probe(lambda: _select_one(deps.pool)),
            _probe(deps.cache.ping),
            _probe(lambda: _upstream_health(deps.upstream)),
        )
        circuit = deps.runtime.breaker.public()
        if database["status"] == "down":
            overall = "down"
        elif upstream["status"] == "down" and circuit["state"] != "open":
            overall = "down"  # requests still go to a provider that is not there
        elif "down" in (cache["status"], upstream["status"]):
            overall = "degraded"
        else:
            overall = "ok"
        body = {
            "status": overall,
            "version": deps.settings.version,
            "timestamp": datetime.now(UTC).isoformat(),
            "dependencies": {"database": database, "redis": cache, "upstream": upstream},
            "circuit": circuit,
        }
        return JSONResponse(body, status_code=200 if overall == "ok" else 503)

    @app.get("/metrics")
    async def metrics_endpoint(deps: Deps) -> Response:
        stats = deps.pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        metrics.pool_connections.labels("in_use").set(size - available)
        metrics.pool_connections.labels("idle").set(available)
        metrics.pool_max.set(deps.pool.max_size)
        metrics.pool_waiting.set(stats.get("requests_waiting", 0))
        state = deps.runtime.breaker.state
        metrics.circuit_state.set({"closed": 0.0, "half-open": 0.5, "open": 1.0}[state])
        metrics.circuit_forced.set(1 if deps.runtime.breaker.forced else 0)
        metrics.rollout.set(await rollout_percentage(deps))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- the API ---------------------------------------------------------------------------

    @app.get("/api/skills")
    async def list_skills(request: Request, deps: Deps) -> JSONResponse:
        response = await _list_skills(deps)
        await audit(deps, request, caller=None, user_id=None, status=response.status_code)  # public route
        return response

    async def _list_skills(deps: Resources) -> JSONResponse:
        if chaos_error(deps):
            return JSONResponse({"error": "internal error"}, status_code=500)
        try:
            cached = await deps.cache.get(SKILLS_CACHE_KEY)
        except RedisError as exc:
            log.warning("cache read failed, serving from the database: %s", exc)
            cached = None
        if cached is not None:
            return JSONResponse({"skills": json.loads(cached), "cache": "hit"})
        try:
            rows = await _skills(deps.pool)
        except (psycopg.Error, TimeoutError) as exc:
            log.error("skills query failed: %s", exc)
            return JSONResponse({"error": "database unavailable", "detail": str(exc)}, status_code=503)
        skills = [
            {
                "id": row["id"],
                "name": row["name"],
                "description": row["description"],
                "enabled": row["enabled"],
                "max_tokens": row["max_tokens"],
                "created_at": row["created_at"].isoformat(),
            }
            for row in rows.values()
        ]
        try:
            await deps.cache.set(SKILLS_CACHE_KEY, json.dumps(skills), ex=deps.runtime.cache_ttl_s)
        except RedisError as exc:
            log.warning("cache write failed: %s", exc)
        return JSONResponse({"skills": skills, "cache": "miss"})

    @app.post("/api/analyze")
    async def analyze(body: AnalyzeBody, request: Request, deps: Deps) -> JSONResponse:
        started = time.perf_counter()
        try:
            caller = await authenticate(deps, request)
            skills = await _skills(deps.pool)
        except (psycopg.Error, TimeoutError) as exc:
            log.error("analysis refused, database unavailable: %s", exc)
            return JSONResponse({"error": "database unavailable"}, status_code=503)
        if caller is None:
            await audit(deps, request, caller=None, user_id=None, status=401)
            return JSONResponse({"error": "invalid or revoked API key"}, status_code=401)
        metrics.key_requests.labels(caller.key_prefix).inc()
        if "analyze" not in caller.scopes:
            await audit(deps, request, caller=caller, user_id=caller.user_id, status=403)
            return JSONResponse({"error": "this key may not run analyses"}, status_code=403)
        name = body.skill
        if name == ROLLOUT_STABLE and random.random() * 100 < await rollout_percentage(deps):  # noqa: S311
            candidate = skills.get(ROLLOUT_SKILL)
            if candidate is not None and candidate["enabled"]:
                name = ROLLOUT_SKILL
        skill = skills.get(name)
        if skill is None or not skill["enabled"]:
            await audit(deps, request, caller=caller, user_id=caller.user_id, status=404)
            return JSONResponse({"error": f"no enabled skill {body.skill!r}"}, status_code=404)

        if chaos_error(deps):
            outcome = Outcome(
                result={"error": "internal error"}, outcome="error", error_type="internal_error", status=500
            )
            cached = False
        else:
            key = _cache_key(skill, body.input)
            try:
                hit = await deps.cache.get(key)
            except RedisError:
                hit = None
            metrics.cache_requests.labels("hit" if hit is not None else "miss").inc()
            cached = hit is not None
            if hit is not None:
                outcome = Outcome(result={**json.loads(hit), "cached": True}, outcome="ok")
            else:
                outcome = await call_upstream(deps, metrics, skill, body.input)
                if outcome.outcome == "ok":
                    try:
                        await deps.cache.set(
                            key, json.dumps(outcome.result), ex=_ttl(deps.runtime.cache_ttl_s)
                        )
                    except RedisError as exc:
                        log.warning("cache write failed: %s", exc)
        metrics.skill_requests.labels(name, outcome.outcome).inc()
        if outcome.outcome == "fallback":
            metrics.fallbacks.labels(name).inc()
        cost = Decimal(outcome.tokens_input + outcome.tokens_output) / 1000 * skill["cost_per_1k_tokens"]
        if outcome.tokens_input or outcome.tokens_output:
            metrics.calls.labels(name).inc()
            metrics.tokens.labels(name, "input").inc(outcome.tokens_input)
            metrics.tokens.labels(name, "output").inc(outcome.tokens_output)
            metrics.cost.labels(name).inc(float(cost))
        status = outcome.status
        try:
            async with deps.pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO usage_logs (skill, user_id, api_key_id, tokens_input, tokens_output,"
                    " cost_usd, duration_ms, success, error_type, cached)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        name,
                        caller.user_id,
                        caller.key_id,
                        outcome.tokens_input,
                        outcome.tokens_output,
                        round(cost, 6),
                        round((time.perf_counter() - started) * 1000),
                        outcome.outcome == "ok",
                        outcome.error_type,
                        cached,
                    ),
                )
        except (psycopg.Error, TimeoutError) as exc:
            log.error("usage not recorded: %s", exc)
            status = 503
            outcome = Outcome(result={"error": "usage could not be recorded"}, outcome="error", status=503)
        await audit(deps, request, caller=caller, user_id=caller.user_id, status=status)
        return JSONResponse(outcome.result, status_code=status)

    @app.get("/api/usage")
    async def usage(
        request: Request,
        deps: Deps,
        user_id: Annotated[int | None, Query(ge=1)] = None,
        hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
    ) -> JSONResponse:
        if chaos_error(deps):
            return JSONResponse({"error": "internal error"}, status_code=500)
        try:
            caller = await authenticate(deps, request)
        except (psycopg.Error, TimeoutError):
            return JSONResponse({"error": "database unavailable"}, status_code=503)
        if caller is None:
            await audit(deps, request, caller=None, user_id=user_id, status=401)
            return JSONResponse({"error": "invalid or revoked API key"}, status_code=401)
        metrics.key_requests.labels(caller.key_prefix).inc()
        target = user_id or caller.user_id
        if target != caller.user_id:
            if "read:any" not in caller.scopes:
                await audit(deps, request, caller=caller, user_id=target, status=403)
                return JSONResponse({"error": "this key reads its own usage only"}, status_code=403)
            metrics.cross_user_reads.labels(caller.key_prefix).inc()
        try:
            async with deps.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT skill, count(*) AS requests, sum(tokens_input + tokens_output) AS tokens,"
                    " sum(cost_usd) AS cost_usd, avg(duration_ms) AS avg_duration_ms,"
                    " count(*) FILTER (WHERE NOT success) AS errors"
                    " FROM usage_logs WHERE user_id = %s AND created_at > now() - make_interval(hours => %s)"
                    " GROUP BY skill ORDER BY skill",
                    (target, hours),
                )
                rows = await cur.fetchall()
        except (psycopg.Error, TimeoutError) as exc:
            await audit(deps, request, caller=caller, user_id=target, status=503)
            return JSONResponse({"error": "database unavailable", "detail": str(exc)}, status_code=503)
        await audit(deps, request, caller=caller, user_id=target, status=200)
        return JSONResponse(
            {
                "user_id": target,
                "hours": hours,
                "skills": [
                    {
                        **row,
                        "cost_usd": float(row["cost_usd"]),
                        "avg_duration_ms": float(row["avg_duration_ms"]),
                    }
                    for row in rows
                ],
            }
        )

    # -- admin: what mitigations change ------------------------------------------------------

    async def _state(deps: Resources) -> dict[str, Any]:
        skills = await _skills(deps.pool)
        return {
            "rollout_percentage": await rollout_percentage(deps),
            "circuit": deps.runtime.breaker.public(),
            "cache_ttl_seconds": deps.runtime.cache_ttl_s,
            "upstream_timeout_seconds": deps.runtime.upstream_timeout_s,
            "skills": {
                n: {"enabled": s["enabled"], "max_tokens": s["max_tokens"]} for n, s in skills.items()
            },
        }

    @app.get("/admin/state", dependencies=[Admin])
    async def admin_state(deps: Deps) -> dict[str, Any]:
        return await _state(deps)

    @app.put("/admin/rollout", dependencies=[Admin])
    async def admin_rollout(body: RolloutBody, deps: Deps) -> dict[str, Any]:
        before = await rollout_percentage(deps)
        try:
            await deps.cache.set(ROLLOUT_FLAG_KEY, body.percentage)
        except RedisError as exc:
            raise HTTPException(503, f"the flag store (Redis) is unavailable: {exc}") from exc
        metrics.rollout.set(body.percentage)
        log.warning("admin: rollout of %s %s%% -> %s%%", ROLLOUT_SKILL, before, body.percentage)
        return {"before": before, "after": body.percentage}

    @app.put("/admin/skills/{name}", dependencies=[Admin])
    async def admin_skill(name: str, body: SkillBody, deps: Deps) -> dict[str, Any]:
        if body.enabled is None and body.max_tokens is None:
            raise HTTPException(422, "give enabled and/or max_tokens")
        async with deps.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT enabled, max_tokens FROM skills WHERE name = %s", (name,))
            before = await cur.fetchone()
            if before is None:
                raise HTTPException(404, f"no skill {name!r}")
            await cur.execute(
                "UPDATE skills SET enabled = coalesce(%s, enabled), max_tokens = coalesce(%s, max_tokens),"
                " updated_at = now() WHERE name = %s RETURNING enabled, max_tokens",
                (body.enabled, body.max_tokens, name),
            )
            after = await cur.fetchone()
        await _drop(deps, SKILLS_CACHE_KEY)
        log.warning("admin: skill %s %s -> %s", name, before, after)
        return {"before": before, "after": after}

    @app.put("/admin/circuit", dependencies=[Admin])
    async def admin_circuit(body: CircuitBody, deps: Deps) -> dict[str, Any]:
        before = deps.runtime.breaker.public()
        deps.runtime.breaker.force(body.state)
        log.warning("admin: circuit %s -> %s", before, body.state)
        return {"before": before, "after": deps.runtime.breaker.public()}

    @app.put("/admin/cache", dependencies=[Admin])
    async def admin_cache(body: CacheBody, deps: Deps) -> dict[str, Any]:
        before = deps.runtime.cache_ttl_s
        deps.runtime.cache_ttl_s = body.ttl_seconds
        return {"before": before, "after": body.ttl_seconds}

    @app.post("/admin/cache/warm", dependencies=[Admin])
    async def admin_cache_warm(body: WarmBody, deps: Deps) -> dict[str, Any]:
        skills = await _skills(deps.pool)
        unknown = [name for name in body.skills if name not in skills]
        if unknown:
            raise HTTPException(404, f"no skills {unknown}")
        gate = asyncio.Semaphore(4)

        async def warm(skill: dict[str, Any], text: str) -> bool:
            async with gate:
                outcome = await call_upstream(deps, metrics, skill, text)
                if outcome.outcome != "ok":
                    return False
                try:
                    await deps.cache.set(
                        _cache_key(skill, text),
                        json.dumps(outcome.result),
                        ex=_ttl(deps.runtime.cache_ttl_s),
                    )
                except RedisError:
                    return False
                return True

        warmed: list[str] = []
        for name in body.skills:
            done = await asyncio.gather(*(warm(skills[name], text) for text in DOCUMENTS))
            if all(done):
                warmed.append(name)
        return {"warmed": warmed}

    @app.put("/admin/upstream", dependencies=[Admin])
    async def admin_upstream(body: UpstreamBody, deps: Deps) -> dict[str, Any]:
        before = deps.runtime.upstream_timeout_s
        deps.runtime.upstream_timeout_s = body.timeout_seconds
        return {"before": before, "after": body.timeout_seconds}

    @app.post("/admin/api-keys/{key_id}/revoke", dependencies=[Admin])
    async def admin_revoke(key_id: Annotated[int, Path(ge=1)], deps: Deps) -> dict[str, Any]:
        async with deps.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT user_id, revoked_at IS NOT NULL FROM api_keys WHERE id = %s", (key_id,))
            row = await cur.fetchone()
            if row is None:
                raise HTTPException(404, f"no API key {key_id}")
            user_id, was_revoked = row
            await cur.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s", (key_id,)
            )
            await cur.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
                (user_id,),
            )
            tokens = cur.rowcount
        log.warning("admin: API key %s revoked with %s refresh tokens of user %s", key_id, tokens, user_id)
        return {
            "before": {"key_id": key_id, "revoked": was_revoked},
            "after": {"key_id": key_id, "revoked": True, "refresh_tokens_revoked": tokens},
        }

    @app.post("/admin/users/{user_id}/disable", dependencies=[Admin])
    async def admin_disable(user_id: Annotated[int, Path(ge=1)], deps: Deps) -> dict[str, Any]:
        async with deps.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT disabled FROM users WHERE id = %s", (user_id,))
            row = await cur.fetchone()
            if row is None:
                raise HTTPException(404, f"no user {user_id}")
            await cur.execute(
                "UPDATE users SET disabled = true, disabled_at = coalesce(disabled_at, now()) WHERE id = %s",
                (user_id,),
            )
        log.warning("admin: user %s disabled", user_id)
        return {
            "before": {"user_id": user_id, "disabled": row[0]},
            "after": {"user_id": user_id, "disabled": True},
        }

    # -- chaos: the faults that live inside this process ------------------------------------

    @app.get("/chaos", dependencies=[Chaos])
    async def chaos_state(deps: Deps) -> dict[str, Any]:
        return {"error_rate": deps.runtime.error_rate, "latency_ms": round(deps.runtime.latency_s * 1000)}

    @app.put("/chaos", dependencies=[Chaos])
    async def chaos_set(body: ChaosBody, deps: Deps) -> dict[str, Any]:
        before = {"error_rate": deps.runtime.error_rate, "latency_ms": round(deps.runtime.latency_s * 1000)}
        if body.error_rate is not None:
            deps.runtime.error_rate = body.error_rate
        if body.latency_ms is not None:
            deps.runtime.latency_s = body.latency_ms / 1000
        after = {"error_rate": deps.runtime.error_rate, "latency_ms": round(deps.runtime.latency_s * 1000)}
        log.warning("chaos: %s -> %s", before, after)
        return {"before": before, "after": after}

    return app


async def _drop(deps: Resources, key: str) -> None:
    try:
        await deps.cache.delete(key)
    except RedisError as exc:
        log.warning("cache key %s not dropped: %s", key, exc)


app = create_app()
