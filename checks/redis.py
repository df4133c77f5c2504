"""Redis: reachability, hit rate, evictions, memory, and a TTL survey of a key pattern.

Only read commands (INFO, SCAN, TTL, PING); never KEYS, which blocks the
server on a large keyspace. Every call has a socket timeout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import median
from typing import Any

import redis as redis_py

from checks._errors import ProbeError
from checks._result import CheckResult, Status, ladder, not_applicable, unobserved
from checks.by_hand import Manual, by_hand, nothing_to_run, percent, redis_words
from checks.targets import Targets
from checks.thresholds import thresholds

__all__ = [
    "CacheStats",
    "TtlSurvey",
    "cache_stats",
    "check_eviction_rate",
    "check_evictions",
    "check_hit_rate",
    "check_memory",
    "check_reachable",
    "check_ttls",
    "client",
    "eviction_rate_query",
    "evictions_verdict",
    "hit_rate_verdict",
    "memory_verdict",
    "ttl_survey",
    "ttl_verdict",
]

DEFAULT_TIMEOUT_S = 5.0
# The INFO sections `cache_stats` reads, and how many keys each SCAN step of the TTL survey asks for.
_STATS, _MEMORY, _KEYSPACE = "stats", "memory", "keyspace"
_SCAN_COUNT = 200


def client(target: Targets | str, *, timeout_s: float | None = None) -> redis_py.Redis:
    """A client with connect and read timeouts; the password from the environment's secret."""
    if isinstance(target, Targets):
        url = target.endpoint("redis")
        password = target.optional_secret("redis_password")
        timeout = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        url, password, timeout = target, None, timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
    extra: dict[str, Any] = {"password": password} if password else {}
    return redis_py.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        decode_responses=True,
        **extra,
    )


@contextmanager
def _session(target: Targets | str) -> Iterator[redis_py.Redis]:
    conn = client(target)
    where = _where(conn)
    try:
        yield conn
    except redis_py.RedisError as exc:
        raise ProbeError(f"Redis did not answer: {type(exc).__name__}: {exc}", target=where) from exc
    finally:
        conn.close()


def _where(conn: redis_py.Redis) -> str:
    kwargs = conn.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What INFO says about hits, evictions and memory."""

    hits: int
    misses: int
    evicted_keys: int
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    keys: int

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    @property
    def memory_usage(self) -> float | None:
        return self.used_memory / self.maxmemory if self.maxmemory else None


def cache_stats(target: Targets | str) -> CacheStats:
    """Hits, misses, evictions and memory since the server started (INFO)."""
    with _session(target) as conn:
        stats: dict[str, Any] = conn.info(_STATS)
        memory: dict[str, Any] = conn.info(_MEMORY)
        keyspace: dict[str, Any] = conn.info(_KEYSPACE)
    return CacheStats(
        hits=int(stats.get("keyspace_hits", 0)),
        misses=int(stats.get("keyspace_misses", 0)),
        evicted_keys=int(stats.get("evicted_keys", 0)),
        used_memory=int(memory.get("used_memory", 0)),
        maxmemory=int(memory.get("maxmemory", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "")),
        keys=sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict)),
    )


def _reachable_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    return [Manual("redis", redis_words("PING"), "PONG; an error or no answer: Redis is unreachable (CRIT)")]


@by_hand(_reachable_by_hand)
def check_reachable(target: Targets | str) -> CheckResult:
    """Does Redis answer PING? CRIT with the error when not."""
    try:
        with _session(target) as conn:
            conn.ping()
    except ProbeError as exc:
        return _unreachable("redis", exc)
    return CheckResult("redis", Status.OK, "answers PING")


def _unreachable(name: str, exc: ProbeError) -> CheckResult:
    return CheckResult(
        name,
        Status.CRIT,
        f"Redis is unreachable: {exc}",
        {"error": str(exc), "target": exc.target},
        remedy="Every lookup now goes to the database: check the Redis process, then its host.",
    )


@thresholds(floor="cache_hit_ratio")
def check_hit_rate(target: Targets | str, *, floor: float = 0.30, min_lookups: int = 100) -> CheckResult:
    """The hit rate since start-up against `floor`: WARN below it, UNKNOWN with too few lookups."""
    try:
        stats = cache_stats(target)
    except ProbeError as exc:
        return _unreachable("cache-hit-rate", exc)
    return hit_rate_verdict(stats, floor=floor, min_lookups=min_lookups)


def hit_rate_verdict(stats: CacheStats, *, floor: float, min_lookups: int) -> CheckResult:
    """The verdict of `check_hit_rate` on what INFO said."""
    evidence: dict[str, float] = {"hits": stats.hits, "misses": stats.misses, "keys": stats.keys}
    rate = stats.hit_rate
    if rate is None or stats.hits + stats.misses < min_lookups:
        return CheckResult(
            "cache-hit-rate",
            Status.UNKNOWN,
            f"only {stats.hits + stats.misses} lookups so far; too few to judge",
            evidence,
        )
    evidence["hit_rate"] = round(rate, 3)
    if rate < floor:
        return CheckResult(
            "cache-hit-rate",
            Status.WARN,
            f"hit rate {rate:.0%} is under the {floor:.0%} floor",
            evidence,
            remedy="Is the cache cold (recent flush or restart), are TTLs too short, or are keys evicted?",
        )
    return CheckResult("cache-hit-rate", Status.OK, f"hit rate {rate:.0%}", evidence)


def check_evictions(target: Targets | str, *, since: int = 0) -> CheckResult:
    """Keys evicted for lack of memory since start-up, or since a previous reading `since`."""
    try:
        stats = cache_stats(target)
    except ProbeError as exc:
        return _unreachable("cache-evictions", exc)
    return evictions_verdict(stats, since=since)


def evictions_verdict(stats: CacheStats, *, since: int) -> CheckResult:
    """The verdict of `check_evictions` on what INFO said."""
    evicted = stats.evicted_keys - since
    evidence = {"evicted_keys": stats.evicted_keys, "maxmemory_policy": stats.maxmemory_policy}
    if evicted > 0:
        return CheckResult(
            "cache-evictions",
            Status.WARN,
            f"{evicted} keys evicted for lack of memory",
            evidence,
            remedy="Raise maxmemory, shorten TTLs of large keys, or cache less.",
        )
    return CheckResult("cache-evictions", Status.OK, "no key evicted", evidence)


def _memory_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        f"used_memory against maxmemory (0: no limit): WARN from {percent(args['warn_ratio'])}, CRIT from "
        f"{percent(args['crit_ratio'])}; at the limit under maxmemory_policy noeviction, writes are refused"
    )
    return [Manual("redis", redis_words("INFO", _MEMORY), note)]


@by_hand(_memory_by_hand)
def check_memory(target: Targets | str, *, warn_ratio: float = 0.8, crit_ratio: float = 0.95) -> CheckResult:
    """Used memory against maxmemory: WARN from `warn_ratio`, CRIT from `crit_ratio`; OK with a
    note when no limit is set. At the limit under `noeviction`, Redis refuses writes."""
    try:
        stats = cache_stats(target)
    except ProbeError as exc:
        return _unreachable("cache-memory", exc)
    return memory_verdict(stats, warn_ratio=warn_ratio, crit_ratio=crit_ratio)


def memory_verdict(stats: CacheStats, *, warn_ratio: float, crit_ratio: float) -> CheckResult:
    """The verdict of `check_memory` on what INFO said."""
    evidence = {
        "used_memory": stats.used_memory,
        "maxmemory": stats.maxmemory,
        "maxmemory_policy": stats.maxmemory_policy,
    }
    usage = stats.memory_usage
    if usage is None:
        return CheckResult("cache-memory", Status.OK, "no maxmemory limit is set", evidence)
    summary = f"{stats.used_memory / 2**20:.1f} MiB of {stats.maxmemory / 2**20:.1f} MiB ({usage:.0%})"
    status = ladder(usage, warn=warn_ratio, crit=crit_ratio)
    if status is Status.CRIT and stats.maxmemory_policy == "noeviction":
        summary += ": at the limit under noeviction, Redis refuses writes (OOM errors)"
    return CheckResult(
        "cache-memory",
        status,
        summary,
        evidence,
        remedy="Raise maxmemory (the mitigation shows current and new), or find what fills it.",
    )


@dataclass(frozen=True, slots=True)
class TtlSurvey:
    """TTLs of the keys matching a pattern (a bounded SCAN sample)."""

    pattern: str
    sampled: int
    without_ttl: int
    ttls: tuple[int, ...]

    @property
    def median_ttl(self) -> float | None:
        return median(self.ttls) if self.ttls else None

    @property
    def min_ttl(self) -> int | None:
        return min(self.ttls) if self.ttls else None


def ttl_survey(target: Targets | str, pattern: str, *, limit: int = 1000) -> TtlSurvey:
    """SCAN up to `limit` keys matching `pattern` and read their TTLs (never KEYS)."""
    ttls: list[int] = []
    without = 0
    with _session(target) as conn:
        keys = []
        for key in conn.scan_iter(match=pattern, count=_SCAN_COUNT):
            keys.append(key)
            if len(keys) >= limit:
                break
        pipe = conn.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        for ttl in pipe.execute():
            if ttl == -1:
                without += 1
            elif ttl >= 0:
                ttls.append(int(ttl))
    return TtlSurvey(pattern=pattern, sampled=len(keys), without_ttl=without, ttls=tuple(ttls))


# --------------------------------------------------------------------------- windowed verdicts


def _ask_prometheus(name: str, targets: Targets, promql: str, client: Any) -> float | CheckResult | None:
    from checks import prometheus

    try:
        return prometheus.scalar(targets, promql, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(
            name, exc, remedy="Prometheus itself may be down: read INFO stats on Redis directly."
        )


def eviction_rate_query(targets: Targets, *, window: str | None = None) -> str:
    """The PromQL of `check_eviction_rate`: keys evicted per second over the rate window."""
    from checks import prometheus

    w = window or targets.query.rate_window
    return f"sum(rate({prometheus.series(targets, 'redis_evictions', None)}[{w}]))"


def _eviction_rate_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    w = args["window"] or targets.query.rate_window
    return [
        Manual(
            "promql",
            eviction_rate_query(targets, window=args["window"]),
            f"keys evicted per second over the last {w}: above 0 is CRIT, maxmemory is below the working set",
        ),
        Manual("redis", redis_words("INFO", _STATS), "evicted_keys: the count since Redis started"),
    ]


@by_hand(_eviction_rate_by_hand)
def check_eviction_rate(targets: Targets, *, window: str | None = None, client: Any = None) -> CheckResult:
    """Keys Redis evicts per second over the rate window (its exporter, through Prometheus).

    CRIT while Redis evicts: maxmemory is below the working set. `check_evictions`
    counts since start-up and stays WARN long after the cause is fixed; this does not.
    """
    from checks import prometheus

    name = "cache-eviction-rate"
    if lacking := prometheus._lacking(targets, name, "redis_evictions"):
        return lacking
    w = window or targets.query.rate_window
    evicted = prometheus.series(targets, "redis_evictions", None)
    promql = eviction_rate_query(targets, window=window)
    rate = _ask_prometheus(name, targets, promql, client)
    if isinstance(rate, CheckResult):
        return rate
    if rate is None:
        return unobserved(
            name,
            f"Prometheus has no {evicted} series (exporter down, or Redis unreachable)",
            configure="Check the Redis exporter's scrape job, or map signal redis_evictions.",
            evidence={"query": promql},
        )
    if past := prometheus.stale(targets, name, "redis_evictions", client=client):
        return past
    evidence = {"evicted_per_s": round(rate, 3), "window": w}
    if rate > 0:
        return CheckResult(
            "cache-eviction-rate",
            Status.CRIT,
            f"Redis evicts {rate:.1f} keys/s over the last {w}: maxmemory is below the working set",
            evidence,
            remedy="Raise maxmemory (the mitigation shows current and new), or cache less.",
        )
    return CheckResult("cache-eviction-rate", Status.OK, f"no key evicted over the last {w}", evidence)


def _key_pattern(target: Targets | str, pattern: str | None) -> str | None:
    """The pattern of `check_ttls`: the one given, else the environment's `cache_keys`."""
    return pattern or (target.cache_keys if isinstance(target, Targets) else None)


def _ttls_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    pattern = _key_pattern(targets, args["pattern"])
    if pattern is None:
        return nothing_to_run(
            "no pattern of the service's cache keys is known (cache_keys in environments.yml)"
        )
    return [
        Manual(
            "redis",
            redis_words("SCAN", "0", "MATCH", pattern, "COUNT", str(_SCAN_COUNT)),
            "the keys of the cache, a page at a time (go on from the cursor it returns until 0): "
            "none at all is CRIT, the cache is empty",
        ),
        Manual(
            "redis",
            redis_words("TTL", "<key>"),
            f"for a few of those keys: seconds left (-1 no TTL); a median under {args['min_ttl_s']:g} s is "
            "CRIT, entries expire before reuse",
        ),
    ]


@by_hand(_ttls_by_hand)
def check_ttls(
    target: Targets | str, pattern: str | None = None, *, min_ttl_s: float = 30.0, limit: int = 1000
) -> CheckResult:
    """TTLs of the cache keys matching `pattern` (the environment's `cache_keys` by default):
    CRIT when the cache is empty or keys expire within `min_ttl_s` (median), so that nothing
    lives long enough to be hit. Not applicable where no key pattern is known."""
    pattern = _key_pattern(target, pattern)
    if pattern is None:
        return not_applicable(
            "cache-ttls",
            "the pattern of the service's cache keys (cache_keys in environments.yml)",
            requires=["cache_keys"],
        )
    try:
        survey = ttl_survey(target, pattern, limit=limit)
    except ProbeError as exc:
        return _unreachable("cache-ttls", exc)
    return ttl_verdict(survey, pattern=pattern, min_ttl_s=min_ttl_s)


def ttl_verdict(survey: TtlSurvey, *, pattern: str, min_ttl_s: float) -> CheckResult:
    """The verdict of `check_ttls` on a survey of the keys matching `pattern`."""
    evidence: dict[str, Any] = {
        "pattern": pattern,
        "sampled": survey.sampled,
        "without_ttl": survey.without_ttl,
        "median_ttl_s": survey.median_ttl,
        "min_ttl_s": survey.min_ttl,
    }
    if survey.sampled == 0:
        return CheckResult(
            "cache-ttls",
            Status.CRIT,
            f"no key matches {pattern!r}: the cache is empty",
            evidence,
            remedy="A flush or a restart emptied it, or entries expire at once: warm it, check the TTL.",
        )
    median_ttl = survey.median_ttl
    if median_ttl is not None and median_ttl < min_ttl_s:
        return CheckResult(
            "cache-ttls",
            Status.CRIT,
            f"{survey.sampled} keys, median TTL {median_ttl:.0f} s (under {min_ttl_s:g} s): "
            "entries expire before reuse",
            evidence,
            remedy="Raise the cache TTL, then warm the cache.",
        )
    median_text = f"{median_ttl:.0f} s" if median_ttl is not None else "none"
    return CheckResult("cache-ttls", Status.OK, f"{survey.sampled} keys, median TTL {median_text}", evidence)
