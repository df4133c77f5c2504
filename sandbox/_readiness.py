"""Readiness: probes that raise `NotReady`, polled to a deadline by `wait_for`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import redis

from sandbox._errors import ReadinessTimeout

PROBE_TIMEOUT_S = 1.0
POLL_INTERVAL_S = 0.1
# The sandbox's rate window (policy/environments.yml, sandbox: query.rate_window), over which
# the runbooks judge rates; a sandbox is ready once Prometheus holds one window of the api.
RATE_WINDOW_S = 15.0


class NotReady(Exception):
    """Raised by a probe: the service answered badly or not at all (yet)."""


def wait_for(
    what: str,
    probe: Callable[[], None],
    *,
    deadline: float,
    tried: str,
    hint: str,
    interval_s: float = POLL_INTERVAL_S,
) -> float:
    """Call `probe` until it stops raising `NotReady`; return the seconds it took.

    `deadline` is a `time.monotonic()` value. Raises `ReadinessTimeout` naming
    `what`, the last error, what was `tried` and a `hint`.
    """
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            probe()
        except NotReady as exc:
            last_error = str(exc)
        else:
            return time.monotonic() - started
        if time.monotonic() + interval_s > deadline:
            raise ReadinessTimeout(
                what,
                timeout_s=time.monotonic() - started,
                attempts=attempts,
                last_error=last_error,
                tried=tried,
                hint=hint,
            )
        time.sleep(interval_s)  # the poll interval, not a stand-in for readiness


def postgres_accepts(dsn: str) -> None:
    """A connection to `dsn` succeeds and answers `SELECT 1`."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(PROBE_TIMEOUT_S))) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        raise NotReady(str(exc).strip()) from exc


def redis_pings(url: str) -> None:
    """`PING` on `url` answers."""
    client = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise NotReady(str(exc)) from exc
    finally:
        client.close()


def http_ok(url: str) -> None:
    """`GET url` answers 200."""
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise NotReady(f"HTTP {response.status_code}: {response.text[:200]}")


def http_answers(url: str) -> None:
    """`GET url` gets an HTTP answer, whatever its status: the server listens and serves.

    For a service started on its own, whose health may report a dependency that is down
    (the api's /health answers 503 while Redis is stopped): that is its health, not a
    failed start."""
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from exc


def _prometheus_query(prometheus_url: str, query: str) -> list[dict[str, Any]]:
    """The samples of the instant `query`; NotReady when Prometheus does not answer it."""
    try:
        response = httpx.get(
            f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=PROBE_TIMEOUT_S
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from exc
    return result


def prometheus_has_sample(prometheus_url: str, query: str) -> None:
    """The instant `query` returns at least one sample."""
    if not _prometheus_query(prometheus_url, query):
        raise NotReady(f"no sample yet for {query}")


def _last_scrape(prometheus_url: str, job: str) -> float:
    """The time of Prometheus's newest scrape of `job` (its own clock)."""
    result = _prometheus_query(prometheus_url, f'max(timestamp(up{{job="{job}"}}))')
    if not result:
        raise NotReady(f"no scrape of {job} yet")
    return float(result[0]["value"][1])


def wait_for_rate_window(prometheus_url: str, *, job: str = "api", deadline: float, hint: str) -> float:
    """Wait until Prometheus has scraped `job` for a whole rate window; the seconds it took.

    Until then every rate a runbook reads covers less than its window (a cost per
    call with no call yet, a hit rate with no look-up), and reads UNKNOWN on a
    sandbox that is healthy.
    """
    started = time.monotonic()
    first: list[float] = []

    def filled() -> None:
        newest = _last_scrape(prometheus_url, job)
        first[:] = first or [newest]
        if newest < first[0] + RATE_WINDOW_S:
            raise NotReady(f"{newest - first[0]:.0f} s of {RATE_WINDOW_S:g} s scraped")

    wait_for(
        f"a {RATE_WINDOW_S:g} s rate window of {job} metrics",
        filled,
        deadline=deadline,
        tried=f"max(timestamp(up{{job={job!r}}})) at {prometheus_url}",
        hint=hint,
        interval_s=0.5,
    )
    return time.monotonic() - started
