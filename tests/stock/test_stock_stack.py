"""The stock stack (sandbox/stock): a second system that is not the reference service.

The module starts its own stack in a temporary directory and stops it however the tests
end. It checks that the stack comes up healthy on loopback, that checks read its
Spring-style health and Prometheus its own metric names, and that each of its four
faults, made with generic means, really happens and really clears.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from checks import Status, Targets
from checks.http import check_health
from sandbox import stock
from sandbox.stock import StockDriver, StockFaults
from tests.integration.support import REPO_ROOT, descendants, listening_addresses, until

pytestmark = pytest.mark.sandbox

FAULT_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 2.0
SLOW_S = 2.5  # sandbox/stock/orders.py: SLOW_DELAY_S


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="drillbook-stock-"))
    path.chmod(0o755)  # as root, PostgreSQL runs as the postgres OS user and must reach it
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def driver(folder: Path) -> Iterator[StockDriver]:
    with stock.running(folder) as started:  # DRILLBOOK_STOCK_DIR names it: Targets.from_env("stock")
        yield started


@pytest.fixture(scope="module")
def state(driver: StockDriver) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(driver.state_file.read_text())
    return loaded


@pytest.fixture(scope="module")
def faults(driver: StockDriver) -> StockFaults:
    return StockFaults(driver)


@pytest.fixture
def orders(state: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=state["endpoints"]["orders"], timeout=CLIENT_TIMEOUT_S) as client:
        yield client


def _prometheus(state: dict[str, Any], query: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{state['endpoints']['prometheus']}/api/v1/query", params={"query": query}, timeout=5
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _healthy(orders: httpx.Client) -> bool:
    try:
        return orders.get("/actuator/health").status_code == 200
    except httpx.HTTPError:
        return False


def _lists_orders(orders: httpx.Client) -> bool:
    try:
        return orders.get("/orders").status_code == 200
    except httpx.HTTPError:
        return False


def _timed_get(orders: httpx.Client, path: str, *, timeout_s: float) -> float:
    started = time.monotonic()
    response = orders.get(path, timeout=timeout_s)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


# -- the healthy stack ------------------------------------------------------------------------


def test_every_service_runs_and_listens_on_loopback_only(driver: StockDriver) -> None:
    assert driver.status() == dict.fromkeys(stock.STOCK_SERVICES, "running")
    supervisord = int((driver.layout.pidfile).read_text())
    sockets = listening_addresses(descendants({supervisord}))
    assert len({port for _, _, port in sockets}) >= len(stock.LISTENERS)
    assert {address for _, address, _ in sockets} == {"127.0.0.1"}, sockets


def test_the_state_file_is_private_and_names_its_endpoints_jobs_and_own_platform_commands(
    state: dict[str, Any], driver: StockDriver, folder: Path
) -> None:
    assert stat.S_IMODE(driver.state_file.stat().st_mode) == 0o600
    assert set(state["endpoints"]) == {"api", "orders", "prometheus", "postgres", "redis"}
    assert all("127.0.0.1:" in endpoint for endpoint in state["endpoints"].values())
    assert state["endpoints"]["api"] == state["endpoints"]["orders"]
    assert state["prometheus_jobs"]["postgres-exporter"] == "postgres"
    assert state["prometheus_jobs"]["redis-exporter"] == "redis"
    restart = state["platform"]["restart"]
    assert restart[-2:] == ["restart", "{service}"]
    assert restart[restart.index("--stack") + 1] == "stock"
    assert Path(restart[restart.index("--dir") + 1]) == folder.resolve()


def test_the_spring_style_health_is_up_and_checks_read_it_as_ok(orders: httpx.Client) -> None:
    response = orders.get("/actuator/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "UP",
        "components": {"db": {"status": "UP"}, "redis": {"status": "UP"}},
    }
    targets = Targets.from_env("stock")
    result = check_health(targets)
    assert result.status is Status.OK, result


def test_prometheus_scrapes_the_orders_metrics_with_a_code_label_and_the_exporters_as_their_jobs(
    state: dict[str, Any],
) -> None:
    rates = _prometheus(state, "sum by (code, path) (rate(orders_http_requests_total[15s]))")
    assert {(s["metric"]["code"], s["metric"]["path"]) for s in rates} >= {
        ("200", "/orders"),
        ("201", "/orders"),
    }
    assert _prometheus(state, 'orders_request_seconds_bucket{path="/orders"}')
    assert not _prometheus(state, "http_requests_total"), "the orders service exports its own names"
    targets = Targets.from_env("stock")
    assert _prometheus(state, f'pg_up{{job="{targets.job("postgres")}"}} == 1')
    assert _prometheus(state, f'redis_up{{job="{targets.job("redis")}"}} == 1')
    assert _prometheus(state, f'up{{job="{targets.job("api")}"}} == 1')


def test_requests_do_real_work_against_postgres_and_the_cache(
    state: dict[str, Any], orders: httpx.Client
) -> None:
    created = orders.post("/orders", json={"item": "washer", "quantity": 3})
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    assert orders.get(f"/orders/{order_id}").json() == {
        "id": order_id,
        "item": "washer",
        "quantity": 3,
        "cached": True,
    }
    with psycopg.connect(state["endpoints"]["postgres"], connect_timeout=2) as conn:
        row = conn.execute("SELECT item, quantity FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row == ("washer", 3)


# -- the faults ----------------------------------------------------------------------------------


def test_when_orders_is_stopped_nothing_listens_and_clearing_brings_it_back(
    faults: StockFaults, driver: StockDriver, orders: httpx.Client
) -> None:
    with faults.injected("orders-down"):
        assert driver.status()["orders"] == "stopped"
        with pytest.raises(httpx.ConnectError):
            orders.get("/actuator/health")
        assert check_health(Targets.from_env("stock")).status is Status.CRIT
    until(lambda: _healthy(orders), timeout_s=FAULT_TIMEOUT_S, what="orders healthy again")


def test_when_a_migration_holds_the_orders_lock_requests_block_until_it_is_cleared(
    faults: StockFaults, state: dict[str, Any], orders: httpx.Client
) -> None:
    with faults.injected("orders-table-locked"):
        with pytest.raises(httpx.TimeoutException):
            orders.get("/orders")
        with psycopg.connect(state["endpoints"]["postgres"], connect_timeout=2) as conn:
            blocked = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orders'"
                " AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
            ).fetchone()
        assert blocked is not None
        assert blocked[0] >= 1
        assert _healthy(orders), "a held lock is not an outage: the health stays UP"
    until(lambda: _lists_orders(orders), timeout_s=FAULT_TIMEOUT_S, what="/orders answering again")


def test_when_redis_is_at_maxmemory_with_noeviction_writes_fail_with_oom_until_cleared(
    faults: StockFaults, state: dict[str, Any], orders: httpx.Client
) -> None:
    client = redis.Redis.from_url(state["endpoints"]["redis"], socket_timeout=2, socket_connect_timeout=2)
    with client:
        with faults.injected("redis-full"):
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
            with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):  # an OOM reply
                client.set("stock-test:probe", "x")
            assert orders.post("/orders", json={"item": "bolt", "quantity": 1}).status_code == 500
        assert client.set("stock-test:probe", "x", ex=60)
    assert orders.post("/orders", json={"item": "bolt", "quantity": 1}).status_code == 201


def test_when_slowed_orders_requests_take_seconds_and_both_clear_and_a_restart_end_it(
    faults: StockFaults, driver: StockDriver, orders: httpx.Client
) -> None:
    with faults.injected("orders-slow"):
        assert _timed_get(orders, "/orders", timeout_s=SLOW_S * 3) >= SLOW_S
        assert _timed_get(orders, "/actuator/health", timeout_s=CLIENT_TIMEOUT_S) < SLOW_S
    assert _timed_get(orders, "/orders", timeout_s=CLIENT_TIMEOUT_S) < SLOW_S
    faults.inject("orders-slow")
    try:
        driver.restart("orders")
        assert _timed_get(orders, "/orders", timeout_s=CLIENT_TIMEOUT_S) < SLOW_S
    finally:
        faults.clear("orders-slow")


def test_the_platform_restart_command_of_the_state_restarts_the_service(
    state: dict[str, Any], driver: StockDriver, orders: httpx.Client
) -> None:
    before = driver.pid("orders")
    argv = [part.replace("{service}", "orders") for part in state["platform"]["restart"]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert driver.pid("orders") not in (0, before)
    assert _healthy(orders)


def test_the_cli_refuses_a_fault_or_service_the_stack_lacks(folder: Path) -> None:
    env = {**os.environ, stock.DIR_VARIABLE: str(folder)}
    for args in (["inject", "cache-cold"], ["restart", "chaos"]):
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", "--stack", "stock", *args],
            capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT, env=env,
        )  # fmt: skip
        assert done.returncode == 2, done
        assert "stock has no" in done.stderr


def test_stopping_the_stock_stack_leaves_the_reference_sandboxs_files_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("state.json", "chaos.json"):
        (reference / name).write_text("{}")
    monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(reference))
    monkeypatch.delenv("DRILLBOOK_SANDBOX_STATE", raising=False)
    StockDriver(tmp_path / "stock").down()  # nothing runs there: only its own files go
    assert sorted(path.name for path in reference.iterdir()) == ["chaos.json", "state.json"]
