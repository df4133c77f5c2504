"""The fault catalogue: inject and clear every incident type the runbooks handle.

    from sandbox.faults import catalogue, Injector
    catalogue()["db-lock-contention"].signal     # what a responder should see
    faults = Injector.attach()                   # the running sandbox (state file + chaos file)
    faults.inject("db-lock-contention")
    faults.clear("db-lock-contention")

The data (names, descriptions, signals, alerts) lives in `sandbox/faults.yml`; this module
holds the code that stages each fault. From a shell, for game days:

    python -m sandbox faults          the catalogue
    python -m sandbox inject NAME
    python -m sandbox clear NAME

Injecting twice is the same as once, and clearing a fault that is not injected is a no-op:
every step sets a state rather than toggling one. Clearing returns the sandbox to its
normal settings (`NORMAL`), whatever a runbook's mitigation changed in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import yaml

from sandbox._driver import Driver, chaos_path, read_chaos_access, read_state
from sandbox._errors import SandboxError
from sandbox.service.corpus import ROLLOUT_SKILL, SKILL_WEIGHTS

__all__ = ["NORMAL", "Fault", "FaultError", "Injector", "catalogue"]

log = logging.getLogger("sandbox")

CATALOGUE = Path(__file__).resolve().parent / "faults.yml"
REQUEST_TIMEOUT_S = 10.0
BALLAST_PREFIX = "ballast:"
BALLAST_VALUE_BYTES = 16 * 1024
BALLAST_KEYS = 256  # 4 MiB in all, well above the headroom left under maxmemory
BALLAST_TTL_S = 600  # expiring, so that volatile-lru may evict it (and spares the flags)
EVICTION_HEADROOM_BYTES = 256 * 1024
# The sandbox's normal settings, which `clear` restores.
NORMAL: dict[str, Any] = {
    "cache_ttl_seconds": 300,
    "rollout_percentage": 10,
    "rollout_max_tokens": 2000,
    "upstream_mode": "ok",
    "token_multiplier": 1.0,
}
BAD_ROLLOUT_MAX_TOKENS = 32_000  # above the atlas-2 model's 16384 limit
ERROR_SHARE = 0.5
ADDED_LATENCY_MS = 2500
TOKEN_MULTIPLIER = 10.0
LEAKING_APPLICATION = "drillbook-report-job"  # as the chaos agent's leak names its sessions
SLOT_CONNECT_TIMEOUT_S = 2
MAX_HELD_SLOTS = 1000  # a bound on the loop, far above the sandbox's max_connections


class FaultError(SandboxError):
    """A fault could not be injected or cleared; the message names the step that failed."""


@dataclass(frozen=True)
class Fault:
    """One entry of `sandbox/faults.yml`."""

    name: str
    description: str
    inject: str
    clear: str
    signal: str
    alerts: tuple[str, ...]


@cache
def catalogue() -> dict[str, Fault]:
    """The fault catalogue, by name, in file order."""
    return read_catalogue(CATALOGUE)


def read_catalogue(path: Path) -> dict[str, Fault]:
    """The faults a catalogue file lists, by name, in file order."""
    entries: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    return {
        entry["name"]: Fault(
            name=entry["name"],
            description=entry["description"],
            inject=entry["inject"],
            clear=entry["clear"],
            signal=entry["signal"],
            alerts=tuple(entry["alerts"]),
        )
        for entry in entries
    }


Step = Callable[[], None]


def run_step(name: str, step: Step) -> None:
    """Run one step of fault `name`; a refusal of Redis or PostgreSQL is a `FaultError` naming it."""
    try:
        step()
    except redis.RedisError as exc:
        raise FaultError(f"{name}: Redis refused a step: {type(exc).__name__}: {exc}") from exc
    except psycopg.Error as exc:
        raise FaultError(f"{name}: PostgreSQL refused a step: {type(exc).__name__}: {exc}") from exc


class Injector:
    """Stages faults in one running sandbox."""

    def __init__(self, driver: Driver) -> None:
        state = read_state(driver.state_file)
        self.driver = driver
        self.endpoints = state["endpoints"]
        self.admin_token = state["secrets"]["admin_token"]
        self.chaos = read_chaos_access(chaos_path())
        self.held: list[psycopg.Connection[Any]] = []  # db-slots-full: this process holds them
        self.steps: dict[str, tuple[Step, Step]] = {
            "service-down": (lambda: driver.stop("api"), lambda: driver.start("api")),
            "error-burst": (
                lambda: self._api_chaos(error_rate=ERROR_SHARE),
                lambda: self._api_chaos(error_rate=0.0),
            ),
            "latency": (
                lambda: self._api_chaos(latency_ms=ADDED_LATENCY_MS),
                lambda: self._api_chaos(latency_ms=0),
            ),
            "upstream-outage": (
                lambda: self._upstream(mode="outage"),
                lambda: self._upstream(mode=NORMAL["upstream_mode"]),
            ),
            "upstream-rate-limited": (
                lambda: self._upstream(mode="rate_limited"),
                lambda: self._upstream(mode=NORMAL["upstream_mode"]),
            ),
            "cost-spike": (
                lambda: self._upstream(token_multiplier=TOKEN_MULTIPLIER),
                lambda: self._upstream(token_multiplier=NORMAL["token_multiplier"]),
            ),
            "db-pool-exhausted": (
                lambda: self._agent("db-pool-exhausted", active=True),
                lambda: self._agent("db-pool-exhausted", active=False),
            ),
            "db-slots-full": (self._take_every_slot, self._release_slots),
            "db-lock-contention": (
                lambda: self._agent("db-lock-contention", active=True),
                lambda: self._agent("db-lock-contention", active=False),
            ),
            "suspicious-access": (
                lambda: self._agent("suspicious-access", active=True),
                lambda: self._agent("suspicious-access", active=False),
            ),
            "db-down": (lambda: driver.stop("postgres"), lambda: driver.start("postgres")),
            "cache-down": (lambda: driver.stop("redis"), self._restart_cache),
            "cache-cold": (self._cache_cold, self._cache_warm),
            "cache-evictions": (self._evictions_on, self._evictions_off),
            "bad-rollout": (self._bad_rollout, self._good_rollout),
        }
        missing = set(catalogue()) ^ set(self.steps)
        if missing:  # a programming error: faults.yml and this module disagree
            raise FaultError(f"faults.yml and sandbox/faults.py disagree about {sorted(missing)}")

    @classmethod
    def attach(cls, driver: Driver | None = None) -> Injector:
        """The injector of the running sandbox (`NotRunning` when there is none)."""
        if driver is None:
            from sandbox import get_driver  # the package imports this module's siblings

            driver = get_driver()
        return cls(driver)

    def inject(self, name: str) -> None:
        """Stage fault `name`; `FaultError` when a step fails."""
        log.info("injecting %s: %s", name, self._fault(name).inject)
        run_step(name, self.steps[name][0])

    def clear(self, name: str) -> None:
        """Undo fault `name`, back to `NORMAL`; `FaultError` when a step fails."""
        log.info("clearing %s: %s", name, self._fault(name).clear)
        run_step(name, self.steps[name][1])

    def _fault(self, name: str) -> Fault:
        try:
            return catalogue()[name]
        except KeyError:
            raise FaultError(
                f"unknown fault {name!r}\nHint: `python -m sandbox faults` lists them: "
                + ", ".join(catalogue())
            ) from None

    # -- the channels --------------------------------------------------------------------------

    def _call(self, method: str, url: str, *, headers: dict[str, str], body: dict[str, Any]) -> Any:
        try:
            response = httpx.request(method, url, json=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise FaultError(
                f"{method} {url} failed: {type(exc).__name__}: {exc}\n"
                "Hint: is the sandbox up? `python -m sandbox status`."
            ) from exc
        if response.status_code >= 400:
            raise FaultError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def _chaos_headers(self) -> dict[str, str]:
        return {"X-Chaos-Token": self.chaos["token"]}

    def _admin(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._call(
            method,
            f"{self.endpoints['api']}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            body=body,
        )

    def _api_chaos(self, **settings: float) -> None:
        self._call("PUT", f"{self.chaos['api']}/chaos", headers=self._chaos_headers(), body=settings)

    def _upstream(self, **settings: float | str) -> None:
        self._call("PUT", f"{self.chaos['upstream']}/chaos", headers=self._chaos_headers(), body=settings)

    def _agent(self, fault: str, *, active: bool) -> None:
        self._call(
            "PUT",
            f"{self.chaos['agent']}/faults/{fault}",
            headers=self._chaos_headers(),
            body={"active": active},
        )

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.endpoints["redis"], socket_timeout=5, socket_connect_timeout=2)

    # -- the database --------------------------------------------------------------------------

    def _take_every_slot(self) -> None:
        """Open idle-in-transaction sessions as the application role until PostgreSQL refuses
        the next one: every ordinary slot taken, only the reserved ones left."""
        if self.held:
            return
        for _ in range(MAX_HELD_SLOTS):
            try:
                conn = psycopg.connect(
                    self.endpoints["postgres"],
                    connect_timeout=SLOT_CONNECT_TIMEOUT_S,
                    application_name=LEAKING_APPLICATION,
                )
            except psycopg.OperationalError as exc:
                if "connection slots are reserved" not in str(exc) and "too many clients" not in str(exc):
                    self._release_slots()  # not the refusal this fault waits for: undo, say why
                    raise FaultError(f"db-slots-full: could not open a session: {exc}") from exc
                log.warning("holding %d idle-in-transaction sessions; the next: %s", len(self.held), exc)
                return
            conn.execute("SELECT count(*) FROM usage_logs")  # opens a transaction, never ended
            self.held.append(conn)
        self._release_slots()
        raise FaultError(f"db-slots-full: PostgreSQL still accepted sessions after {MAX_HELD_SLOTS}")

    def _release_slots(self) -> None:
        held, self.held = self.held, []
        for conn in held:  # a mitigation may have terminated some: closing those is a no-op
            conn.close()

    # -- the cache -----------------------------------------------------------------------------

    def _cache_cold(self) -> None:
        self._admin("PUT", "/admin/cache", {"ttl_seconds": 1})
        with self._redis() as client:
            for key in _scan(client, "cache:*"):
                client.unlink(key)

    def _cache_warm(self) -> None:
        self._admin("PUT", "/admin/cache", {"ttl_seconds": NORMAL["cache_ttl_seconds"]})
        self._admin("POST", "/admin/cache/warm", {"skills": [*SKILL_WEIGHTS, ROLLOUT_SKILL]})

    def _evictions_on(self) -> None:
        with self._redis() as client:
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory-policy", "volatile-lru")
            client.config_set("maxmemory", str(used + EVICTION_HEADROOM_BYTES))
            ballast = b"x" * BALLAST_VALUE_BYTES
            pipe = client.pipeline(transaction=False)
            for n in range(BALLAST_KEYS):
                pipe.set(f"{BALLAST_PREFIX}{n}", ballast, ex=BALLAST_TTL_S)
            pipe.execute(raise_on_error=False)  # some writes may be refused once memory is full

    def _evictions_off(self) -> None:
        with self._redis() as client:
            client.config_set("maxmemory", "0")
            client.config_set("maxmemory-policy", "noeviction")
            for key in _scan(client, f"{BALLAST_PREFIX}*"):
                client.unlink(key)
        self._cache_warm()  # what the evictions took

    def _restart_cache(self) -> None:
        self.driver.start("redis")
        self._cache_warm()  # a restarted Redis is empty

    # -- the rollout ---------------------------------------------------------------------------

    def _bad_rollout(self) -> None:
        self._admin("PUT", f"/admin/skills/{ROLLOUT_SKILL}", {"max_tokens": BAD_ROLLOUT_MAX_TOKENS})
        self._admin("PUT", "/admin/rollout", {"percentage": 100})

    def _good_rollout(self) -> None:
        self._admin(
            "PUT",
            f"/admin/skills/{ROLLOUT_SKILL}",
            {"max_tokens": NORMAL["rollout_max_tokens"], "enabled": True},
        )
        self._admin("PUT", "/admin/rollout", {"percentage": NORMAL["rollout_percentage"]})


def _scan(client: redis.Redis, pattern: str) -> Iterator[bytes]:
    """Keys matching `pattern`, by SCAN (never KEYS)."""
    keys: Iterator[bytes] = client.scan_iter(match=pattern, count=500)
    return keys
