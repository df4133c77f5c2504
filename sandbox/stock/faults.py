"""The stock stack's faults, each made with generic means and each with its clear.

    from sandbox.stock import StockDriver, StockFaults
    faults = StockFaults(StockDriver(root))
    with faults.injected("orders-table-locked"):   # cleared however the block ends
        ...

The data (names, descriptions, what a responder sees) lives in sandbox/config/stock-faults.yml.
From a shell: `python -m sandbox --stack stock faults|inject NAME|clear NAME`. As in the
reference catalogue, injecting twice is injecting once and clearing a fault that is not
injected does nothing: every step sets a state rather than toggling one.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import redis

from sandbox._driver import read_state
from sandbox.faults import Fault, FaultError, Step, read_catalogue, run_step
from sandbox.stock._native import StockDriver

__all__ = ["StockFaults", "stock_catalogue"]

log = logging.getLogger("sandbox")

CATALOGUE = Path(__file__).resolve().parent.parent / "config" / "stock-faults.yml"
MAXMEMORY_SHARE = 0.9  # of the memory in use: every write that needs memory is refused
REDIS_TIMEOUT_S = 5.0
NORMAL_MAXMEMORY = "0"  # no limit, as the stock stack starts
NORMAL_POLICY = "noeviction"  # Redis's default


@cache
def stock_catalogue() -> dict[str, Fault]:
    """The stock stack's faults by name, in file order."""
    return read_catalogue(CATALOGUE)


class StockFaults:
    """Stages faults in one running stock stack."""

    def __init__(self, driver: StockDriver) -> None:
        self.driver = driver
        self.endpoints = read_state(driver.state_file)["endpoints"]  # NotRunning when it is not up
        self.steps: dict[str, tuple[Step, Step]] = {
            "orders-down": (lambda: driver.stop("orders"), lambda: driver.start("orders")),
            "orders-table-locked": (driver.start_migration, driver.stop_migration),
            "redis-full": (self._redis_full, self._redis_unlimited),
            "orders-slow": (
                lambda: self._signal_orders(signal.SIGUSR1),
                lambda: self._signal_orders(signal.SIGUSR2),
            ),
        }
        if missing := set(stock_catalogue()) ^ set(self.steps):
            raise FaultError(f"stock-faults.yml and sandbox/stock/faults.py disagree about {sorted(missing)}")

    def inject(self, name: str) -> None:
        """Stage fault `name`; `FaultError` when a step fails."""
        log.info("injecting %s: %s", name, self._fault(name).inject)
        run_step(name, self.steps[name][0])

    def clear(self, name: str) -> None:
        """Undo fault `name`; `FaultError` when a step fails."""
        log.info("clearing %s: %s", name, self._fault(name).clear)
        run_step(name, self.steps[name][1])

    @contextmanager
    def injected(self, name: str) -> Iterator[None]:
        """Fault `name` for the block, cleared afterwards whatever happens in it."""
        self.inject(name)
        try:
            yield
        finally:
            self.clear(name)

    def _fault(self, name: str) -> Fault:
        try:
            return stock_catalogue()[name]
        except KeyError:
            raise FaultError(
                f"unknown stock fault {name!r}\nHint: `python -m sandbox --stack stock faults` lists them: "
                + ", ".join(stock_catalogue())
            ) from None

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.endpoints["redis"], socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )

    def _redis_full(self) -> None:
        with self._redis() as client:
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", str(max(1, int(used * MAXMEMORY_SHARE))))

    def _redis_unlimited(self) -> None:
        with self._redis() as client:
            client.config_set("maxmemory", NORMAL_MAXMEMORY)
            client.config_set("maxmemory-policy", NORMAL_POLICY)

    def _signal_orders(self, signum: signal.Signals) -> None:
        pid = self.driver.pid("orders")
        if not pid:
            if signum == signal.SIGUSR2:
                return  # not running: nothing is slow, and a start begins fast
            raise FaultError("orders-slow: the orders service is not running\nHint: start it first.")
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            if signum != signal.SIGUSR2:
                raise FaultError(f"orders-slow: the orders process {pid} is gone") from None
