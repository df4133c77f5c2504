"""The stock stack: a second system to run runbooks against, which is not the reference service.

What runs (native driver, each on a free 127.0.0.1 port, under a supervisord of its own):

    postgres           PostgreSQL from the OS packages; role and database `orders`
    redis              Redis from the OS packages, no limit, policy noeviction (Redis's default)
    orders             sandbox/stock/orders.py: GET/POST /orders, GET /orders/{id}, Spring-style
                       /actuator/health, /metrics with orders_http_requests_total{code,path}
                       and the histogram orders_request_seconds{path}
    traffic            sandbox/stock/traffic.py: about 4 requests a second against orders
    postgres-exporter  the stock exporter, default metrics (job `postgres`)
    redis-exporter     the stock exporter (job `redis`)
    prometheus         scrapes orders (job `orders`), both exporters and itself every 2 s; no rules

Its directory is `$DRILLBOOK_STOCK_DIR`, else `.sandbox-stock/` in the repository. `up` writes
`state.json` there (endpoints `api` = `orders`, `prometheus`, `postgres`, `redis`; the
Prometheus jobs; `platform` commands `python -m sandbox --stack stock --dir DIR --driver
native restart|stop|start {service}`), which the `stock` environment of
policy/environments.yml reads (`endpoints_from: stock-state`).

From Python (tests, drills):

    from sandbox import stock
    with stock.running(folder) as driver:      # started, ready, a rate window scraped; stopped after
        with stock.faults(folder).injected("orders-table-locked"):   # cleared after
            ...                                # drillbook run ... --env stock finds this stack

    driver = stock.up(folder)                  # the same without the block
    stock.down(folder)

From a shell: `python -m sandbox --stack stock up|down|status|endpoints|logs|stop|start|
restart|faults|inject|clear` (`--dir DIR` before the subcommand names the directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.stock._native import (
    DIR_VARIABLE,
    HEALTH_PATH,
    LISTENERS,
    STOCK_JOBS,
    STOCK_SERVICES,
    StockDriver,
    stock_dir,
)
from sandbox.stock.faults import StockFaults, stock_catalogue

__all__ = [
    "DIR_VARIABLE",
    "HEALTH_PATH",
    "LISTENERS",
    "STOCK_JOBS",
    "STOCK_SERVICES",
    "StockDriver",
    "StockFaults",
    "clear",
    "down",
    "faults",
    "inject",
    "running",
    "stock_catalogue",
    "stock_dir",
    "up",
]


def up(folder: Path | None = None, *, timeout_s: float = 90.0, wait_for_rates: bool = True) -> StockDriver:
    """Start the stock stack in `folder` (default `stock_dir()`) and return its driver once ready."""
    driver = StockDriver(folder)
    driver.up(timeout_s=timeout_s, wait_for_rates=wait_for_rates)
    return driver


def down(folder: Path | None = None) -> None:
    """Stop the stock stack in `folder` (default `stock_dir()`); a no-op when nothing runs."""
    StockDriver(folder).down()


@contextmanager
def running(
    folder: Path | None = None, *, timeout_s: float = 120.0, wait_for_rates: bool = True
) -> Iterator[StockDriver]:
    """The stock stack in `folder`, started for the block and stopped however it ends.

    Meanwhile $DRILLBOOK_STOCK_DIR names `folder`, so that `Targets.from_env("stock")`, runbook
    kernels and the state file's platform commands all reach this stack; its value before the
    block comes back after it."""
    driver = StockDriver(folder)
    before = os.environ.get(DIR_VARIABLE)
    os.environ[DIR_VARIABLE] = str(driver.layout.root)
    try:
        driver.up(timeout_s=timeout_s, wait_for_rates=wait_for_rates)  # stops what it started if it fails
        try:
            yield driver
        finally:
            driver.down()
    finally:
        if before is None:
            os.environ.pop(DIR_VARIABLE, None)
        else:
            os.environ[DIR_VARIABLE] = before


def faults(folder: Path | None = None) -> StockFaults:
    """The fault injector of the stock stack running in `folder` (`NotRunning` when none runs)."""
    return StockFaults(StockDriver(folder))


def inject(fault: str, folder: Path | None = None) -> None:
    """Stage `fault` in the stock stack of `folder`."""
    faults(folder).inject(fault)


def clear(fault: str, folder: Path | None = None) -> None:
    """Undo `fault` in the stock stack of `folder`."""
    faults(folder).clear(fault)
