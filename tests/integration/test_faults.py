"""Every fault of the catalogue, for real, in one sandbox.

For each fault: its alerts are quiet; inject; the raw signal a responder would look at
changes (pg_stat_activity, audit_logs, Redis INFO, /health, the status page...); the
alert reaches the webhook receiver with its runbook_url; clear; the signal is back to
normal. The order matters only in that faults whose side effects page with another
fault's alert (a stopped database also raises the error rate) come after that fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sandbox import Driver, read_state, state_path
from sandbox._driver import chaos_path, read_chaos_access
from sandbox.faults import Injector, catalogue
from sandbox.service.corpus import API_APPLICATION_NAME, API_POOL_MAX_SIZE, SUSPICIOUS_ADDRESS, api_key
from tests.integration.support import SITE, runbook_of_alert, running_sandbox, sandbox_cli, sandbox_dir, until

pytestmark = pytest.mark.sandbox

SIGNAL_TIMEOUT_S = 20.0
PAGE_TIMEOUT_S = 30.0  # the target is 20 s (benchmarks/sandbox.py measures it)
QUIET_TIMEOUT_S = 60.0
NORMAL_TIMEOUT_S = 30.0
KEY = {"X-API-Key": api_key(12)}


@dataclass
class World:
    """What a responder can look at, plus the moments a drill needs to compare against."""

    endpoints: dict[str, str]
    api: httpx.Client
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    cleared: datetime = field(default_factory=lambda: datetime.now(UTC))
    baseline: dict[str, float] = field(default_factory=dict)

    @property
    def superuser_dsn(self) -> str:  # reserved slots: observes even when the pool is exhausted
        return self.endpoints["postgres"].replace("postgresql://drillbook@", "postgresql://postgres@")

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.superuser_dsn, connect_timeout=2, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.endpoints["redis"], socket_timeout=2, socket_connect_timeout=2)

    def health(self) -> tuple[int, dict[str, Any]]:
        response = self.api.get("/health")
        return response.status_code, response.json()

    def counters(self, name: str) -> dict[str, float]:
        text = self.api.get("/metrics").text
        return {
            ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    def active_alerts(self, names: tuple[str, ...]) -> list[str]:
        alerts = httpx.get(f"{self.endpoints['prometheus']}/api/v1/alerts", timeout=5).json()["data"][
            "alerts"
        ]
        return [a["labels"]["alertname"] for a in alerts if a["labels"]["alertname"] in names]

    def page(self, names: tuple[str, ...]) -> dict[str, Any] | None:
        """The first firing page for one of `names` that started after the injection."""
        pages = httpx.get(f"{self.endpoints['receiver']}/pages", params={"status": "firing"}, timeout=5)
        for page in pages.json()["pages"]:
            starts = datetime.fromisoformat(page["startsAt"].replace("Z", "+00:00"))
            if page["labels"]["alertname"] in names and starts >= self.started - timedelta(seconds=1):
                return dict(page)
        return None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Driver]:
    with sandbox_dir(), running_sandbox() as driver:
        yield driver


@pytest.fixture(scope="module")
def world(sandbox: Driver) -> Iterator[World]:
    endpoints = read_state(state_path())["endpoints"]
    with httpx.Client(base_url=endpoints["api"], timeout=10.0) as client:
        yield World(endpoints=dict(endpoints), api=client)


@pytest.fixture(scope="module")
def injector(sandbox: Driver) -> Injector:
    return Injector.attach(sandbox)


def drill(
    name: str,
    injector: Injector,
    world: World,
    *,
    signal: Callable[[World], object],
    normal: Callable[[World], object],
) -> None:
    """Inject `name`, see `signal` and a page with the runbook link, clear, see `normal`."""
    fault = catalogue()[name]
    until(
        lambda: not world.active_alerts(fault.alerts),
        timeout_s=QUIET_TIMEOUT_S,
        what=f"{fault.alerts} to be quiet before injecting {name}",
        interval_s=1.0,
    )
    world.started = datetime.now(UTC)
    injector.inject(name)
    try:
        until(lambda: signal(world), timeout_s=SIGNAL_TIMEOUT_S, what=f"{name}: {fault.signal}")
        page = until(
            lambda: world.page(fault.alerts), timeout_s=PAGE_TIMEOUT_S, what=f"a page for {fault.alerts}"
        )
    finally:
        world.cleared = datetime.now(UTC)
        injector.clear(name)
    alert = page["labels"]["alertname"]
    assert page["annotations"]["runbook_url"] == f"{SITE}runbooks/{runbook_of_alert()[alert]}/"
    assert page["labels"]["severity"] in {"SEV1", "SEV2", "SEV3", "SEV4"}
    until(lambda: normal(world), timeout_s=NORMAL_TIMEOUT_S, what=f"{name} cleared: back to normal")


# -- the signals ----------------------------------------------------------------------------------


def health_ok(world: World) -> bool:
    try:
        status, body = world.health()
    except httpx.HTTPError:
        return False
    return status == 200 and body["status"] == "ok"


def share_of_500s(world: World) -> float:
    statuses = [world.api.get("/api/skills", headers=KEY).status_code for _ in range(30)]
    return statuses.count(500) / len(statuses)


def rows_since(world: World, since: datetime, condition: str) -> int:
    """usage_logs rows newer than `since` matching `condition` (a literal of this module)."""
    query = f"SELECT count(*) FROM usage_logs WHERE created_at > %s AND {condition}"  # noqa: S608
    (count,) = world.sql(query, since)[0]
    return int(count)


def connections(world: World) -> tuple[float, int]:
    used, limit, leaked = world.sql(
        "SELECT count(*) FILTER (WHERE backend_type = 'client backend'),"
        " current_setting('max_connections')::int,"
        " count(*) FILTER (WHERE application_name = 'drillbook-report-job' AND state = 'idle in transaction')"
        " FROM pg_stat_activity"
    )[0]
    return used / limit, leaked


def sessions_blocked_by_the_migration(world: World) -> int:
    (count,) = world.sql(
        "SELECT count(*) FROM pg_stat_activity AS waiting WHERE waiting.wait_event_type = 'Lock'"
        " AND EXISTS (SELECT 1 FROM pg_stat_activity AS holder"
        "  WHERE holder.pid = ANY (pg_blocking_pids(waiting.pid))"
        "  AND holder.application_name = 'drillbook-migration' AND holder.state = 'idle in transaction')"
    )[0]
    return int(count)


def hit_ratio_since(world: World, baseline: dict[str, float], *, minimum: int = 5) -> float | None:
    now = world.counters("cache_requests_total")
    hits = now["result=hit"] - baseline.get("result=hit", 0)
    misses = now["result=miss"] - baseline.get("result=miss", 0)
    return hits / (hits + misses) if hits + misses >= minimum else None


def cache_ttls(world: World) -> list[int]:
    client = world.redis()
    keys = [
        key for key, _ in zip(client.scan_iter(match="cache:analyze:*", count=200), range(50), strict=False)
    ]
    return [int(ttl) for ttl in (client.ttl(key) for key in keys) if int(ttl) > 0]


# -- one test per fault ---------------------------------------------------------------------------


def test_error_burst(injector: Injector, world: World) -> None:
    drill(
        "error-burst",
        injector,
        world,
        signal=lambda w: (
            0.25 <= share_of_500s(w) <= 0.75 and rows_since(w, w.started, "error_type = 'internal_error'") > 0
        ),
        normal=lambda w: share_of_500s(w) == 0,
    )


def test_latency(injector: Injector, world: World) -> None:
    def slowest_of_three(w: World) -> float:
        durations = []
        for _ in range(3):
            started = time.monotonic()
            w.api.get("/api/skills", headers=KEY)
            durations.append(time.monotonic() - started)
        return min(durations)

    drill(
        "latency",
        injector,
        world,
        signal=lambda w: slowest_of_three(w) >= 2.4,
        normal=lambda w: slowest_of_three(w) < 1.0,
    )


def test_upstream_outage(injector: Injector, world: World) -> None:
    def status_page(w: World) -> str:
        body = httpx.get(f"{w.endpoints['upstream']}/api/v2/status.json", timeout=5).json()
        return str(body["status"]["indicator"])

    def open_and_degraded(w: World) -> bool:
        status, body = w.health()
        return (
            status == 503
            and body["status"] == "degraded"
            and body["circuit"] == {"state": "open", "forced": False}
            and body["dependencies"]["upstream"]["status"] == "down"
            and status_page(w) == "major"
        )

    drill(
        "upstream-outage",
        injector,
        world,
        signal=open_and_degraded,
        normal=lambda w: (
            health_ok(w) and w.health()[1]["circuit"]["state"] == "closed" and status_page(w) == "none"
        ),
    )


def test_upstream_rate_limited(injector: Injector, world: World) -> None:
    drill(
        "upstream-rate-limited",
        injector,
        world,
        signal=lambda w: rows_since(w, w.started, "error_type = 'rate_limited'") >= 3,
        normal=lambda w: (
            rows_since(w, w.cleared + timedelta(seconds=1), "success AND NOT cached") > 0
            and rows_since(w, w.cleared + timedelta(seconds=1), "error_type = 'rate_limited'") == 0
        ),
    )


def test_cost_spike(injector: Injector, world: World) -> None:
    def cost_ratio(w: World, since: datetime) -> float | None:
        (ratio,) = w.sql(
            "WITH baseline AS (SELECT skill, avg(cost_usd) AS cost FROM usage_logs"
            "  WHERE success AND NOT cached AND created_at < now() - interval '1 hour' GROUP BY skill)"
            " SELECT max(l.cost_usd / b.cost) FROM usage_logs AS l JOIN baseline AS b USING (skill)"
            " WHERE l.created_at > %s AND l.success AND NOT l.cached",
            since,
        )[0]
        return None if ratio is None else float(ratio)

    drill(
        "cost-spike",
        injector,
        world,
        signal=lambda w: (
            (cost_ratio(w, w.started) or 0) > 1.5 and rows_since(w, w.started, "tokens_output > 1000") > 0
        ),
        normal=lambda w: (
            (ratio := cost_ratio(w, w.cleared + timedelta(seconds=1))) is not None and ratio < 1.3
        ),
    )


def test_cache_cold(injector: Injector, world: World) -> None:
    def cold(w: World) -> bool:
        ttls = cache_ttls(w)
        ratio = hit_ratio_since(w, w.baseline)
        return bool(ttls) and max(ttls) <= 2 and ratio is not None and ratio < 0.3

    def warm(w: World) -> bool:
        if not w.baseline.get("cleared"):
            w.baseline = {**w.counters("cache_requests_total"), "cleared": 1.0}
            return False
        ttls = cache_ttls(w)
        ratio = hit_ratio_since(w, w.baseline, minimum=10)
        return bool(ttls) and max(ttls) > 60 and ratio is not None and ratio > 0.5

    world.baseline = world.counters("cache_requests_total")
    drill("cache-cold", injector, world, signal=cold, normal=warm)


def test_cache_evictions(injector: Injector, world: World) -> None:
    evicted_at_start = int(world.redis().info("stats")["evicted_keys"])

    def evicting(w: World) -> bool:
        client = w.redis()
        memory = client.info("memory")
        return int(client.info("stats")["evicted_keys"]) > evicted_at_start and int(memory["maxmemory"]) > 0

    def unbounded(w: World) -> bool:
        client = w.redis()
        before = int(client.info("stats")["evicted_keys"])
        no_ballast = next(client.scan_iter(match="ballast:*", count=1000), None) is None
        return (
            int(client.info("memory")["maxmemory"]) == 0
            and no_ballast
            and (int(client.info("stats")["evicted_keys"]) == before)
        )

    drill("cache-evictions", injector, world, signal=evicting, normal=unbounded)


def test_suspicious_access(injector: Injector, world: World) -> None:
    def skew(w: World) -> bool:
        rows = w.sql(
            "SELECT api_key_id, count(DISTINCT user_id), host(address) FROM audit_logs"
            " WHERE created_at > %s GROUP BY api_key_id, address ORDER BY 2 DESC LIMIT 1",
            w.started,
        )
        return bool(rows) and rows[0][1] >= 20 and rows[0][2] == SUSPICIOUS_ADDRESS

    def quiet(w: World) -> bool:
        since = w.cleared + timedelta(seconds=1)
        if datetime.now(UTC) < since + timedelta(seconds=2):
            return False
        (count,) = w.sql(
            "SELECT count(*) FROM audit_logs WHERE created_at > %s AND address = %s",
            since,
            SUSPICIOUS_ADDRESS,
        )[0]
        return count == 0

    drill("suspicious-access", injector, world, signal=skew, normal=quiet)


def test_bad_rollout(injector: Injector, world: World, sandbox: Driver) -> None:
    admin = {"Authorization": f"Bearer {read_state(state_path())['secrets']['admin_token']}"}

    def rollout(w: World) -> dict[str, Any]:
        body: dict[str, Any] = w.api.get("/admin/state", headers=admin).json()
        return body

    drill(
        "bad-rollout",
        injector,
        world,
        signal=lambda w: (
            rollout(w)["rollout_percentage"] == 100
            and rows_since(w, w.started, "skill = 'summarise-v2' AND error_type = 'invalid_request'") >= 3
        ),
        normal=lambda w: (
            rollout(w)["rollout_percentage"] == 10
            and rollout(w)["skills"]["summarise-v2"]["max_tokens"] == 2000
            and rows_since(w, w.cleared + timedelta(seconds=1), "error_type = 'invalid_request'") == 0
        ),
    )


def test_db_pool_exhausted(injector: Injector, world: World) -> None:
    def exhausted(w: World) -> bool:
        ratio, leaked = connections(w)
        return ratio >= 0.8 and leaked >= 10

    def relieved(w: World) -> bool:
        ratio, leaked = connections(w)
        return ratio < 0.5 and leaked == 0

    drill("db-pool-exhausted", injector, world, signal=exhausted, normal=relieved)


def test_db_slots_full(injector: Injector, world: World) -> None:
    """Every ordinary slot taken: the application role is refused, the reserved role still gets in."""

    def full(w: World) -> bool:
        try:
            psycopg.connect(w.endpoints["postgres"], connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            refused = str(exc)
        else:
            return False
        reserved = w.endpoints["postgres"].replace("://drillbook@", "://drillbook_reserved@")
        with psycopg.connect(reserved, connect_timeout=2) as responder:  # the sandbox made this role
            answered = responder.execute("SELECT 1").fetchone() == (1,)
        return "connection slots are reserved" in refused and answered

    def relieved(w: World) -> bool:
        ratio, leaked = connections(w)
        return ratio < 0.5 and leaked == 0

    drill("db-slots-full", injector, world, signal=full, normal=relieved)


def test_db_pool_exhausted_leaves_the_api_pool_its_room_and_a_responder_a_session(
    injector: Injector, world: World
) -> None:
    """The leak fills the server but for the API pool's room to grow and a session to act
    from: if the pool's growth could take the last slot, the runbook could not connect."""
    injector.inject("db-pool-exhausted")
    grown: list[psycopg.Connection[Any]] = []
    try:
        until(lambda: connections(world)[0] >= 0.8, timeout_s=SIGNAL_TIMEOUT_S, what="the leak")
        ((api_sessions,),) = world.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", API_APPLICATION_NAME
        )
        for _ in range(API_POOL_MAX_SIZE - api_sessions):  # the pool at its largest
            grown.append(psycopg.connect(world.endpoints["postgres"], connect_timeout=2,
                                         application_name=API_APPLICATION_NAME))  # fmt: skip
        with psycopg.connect(world.endpoints["postgres"], connect_timeout=2) as responder:
            assert responder.execute("SELECT 1").fetchone() == (1,)
        ratio, _ = connections(world)
        assert ratio >= 0.9, "still critical once the pool has grown"
    finally:
        for conn in grown:
            conn.close()
        injector.clear("db-pool-exhausted")
    until(lambda: connections(world)[1] == 0, timeout_s=NORMAL_TIMEOUT_S, what="the leaked sessions closed")


def test_db_lock_contention(injector: Injector, world: World) -> None:
    drill(
        "db-lock-contention",
        injector,
        world,
        signal=lambda w: sessions_blocked_by_the_migration(w) > 0,
        normal=lambda w: (
            not w.sql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " OR application_name = 'drillbook-migration'"
            )
        ),
    )


def test_cache_down(injector: Injector, world: World) -> None:
    def down(w: World) -> bool:
        try:
            w.redis().ping()
        except redis.ConnectionError:
            status, body = w.health()
            return status == 503 and body["dependencies"]["redis"]["status"] == "down"
        return False

    drill("cache-down", injector, world, signal=down, normal=lambda w: health_ok(w) and w.redis().ping())


def test_db_down(injector: Injector, world: World) -> None:
    def down(w: World) -> bool:
        try:
            w.sql("SELECT 1")
        except psycopg.OperationalError:
            status, body = w.health()
            return (
                status == 503
                and body["status"] == "down"
                and body["dependencies"]["database"]["status"] == "down"
            )
        return False

    drill(
        "db-down", injector, world, signal=down, normal=lambda w: health_ok(w) and w.sql("SELECT 1") == [(1,)]
    )


def test_service_down(injector: Injector, world: World) -> None:
    def refused(w: World) -> bool:
        try:
            w.api.get("/health")
        except httpx.ConnectError:
            return True
        return False

    drill("service-down", injector, world, signal=refused, normal=health_ok)


def test_every_fault_of_the_catalogue_has_a_test_here() -> None:
    source = Path(__file__).read_text()
    assert [name for name in catalogue() if f'"{name}"' not in source] == []


def test_cli_injects_and_clears_a_fault(world: World) -> None:
    access = read_chaos_access(chaos_path())

    def error_rate() -> float:
        headers = {"X-Chaos-Token": access["token"]}
        return float(httpx.get(f"{access['api']}/chaos", headers=headers, timeout=5).json()["error_rate"])

    done = sandbox_cli("inject", "error-burst")
    assert done.returncode == 0, done.stderr
    assert error_rate() == 0.5
    done = sandbox_cli("clear", "error-burst")
    assert done.returncode == 0, done.stderr
    assert error_rate() == 0.0
    assert sandbox_cli("inject", "no-such-fault").returncode == 2
