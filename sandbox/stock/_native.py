"""The stock stack under the native driver: the same machinery as the reference sandbox
(a private supervisord, free loopback ports, readiness probes with deadlines), other services.

Its working directory (`stock_dir()`) holds what the reference sandbox's does: supervisord's
files, `state.json`, `logs/<service>.log`, `processes.json`, `ports.json`, `postgres/data`,
`prometheus/`, `traffic.heartbeat`. Start-up: PostgreSQL, Redis, Prometheus and the Redis
exporter at once; the orders service and the PostgreSQL exporter once the database and its
role exist; the traffic once the orders service's health answers 200.

Besides its services, supervisord holds one program that never starts with the stack:
`migration`, a session that takes `LOCK TABLE orders IN ACCESS EXCLUSIVE MODE` and keeps its
transaction open (sandbox/stock/migration.py). The held-lock fault starts and stops it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql
from supervisor.xmlrpc import Faults  # type: ignore[import-untyped]  # no stubs

from sandbox._driver import REPO_ROOT, _write_private, platform_commands
from sandbox._errors import SandboxError, StartupError
from sandbox._native import (
    PACKAGE_DIR,
    PG_SUPERUSER,
    Binaries,
    NativeDriver,
    _beats_after,
    _ini,
    store_programs,
)
from sandbox._ports import pick_ports
from sandbox._readiness import (
    NotReady,
    http_answers,
    http_ok,
    postgres_accepts,
    prometheus_has_sample,
    redis_pings,
    wait_for,
    wait_for_rate_window,
)

log = logging.getLogger("sandbox")

# Supervisor program names, in start-up order.
STOCK_SERVICES: tuple[str, ...] = (
    "postgres",
    "redis",
    "orders",
    "traffic",
    "postgres-exporter",
    "redis-exporter",
    "prometheus",
)
LISTENERS = tuple(service for service in STOCK_SERVICES if service != "traffic")
# service -> the Prometheus job that scrapes it: the exporters' jobs are named after what
# they export, so that `up{job="postgres"}` and `pg_up` come from the exporter of this stack.
STOCK_JOBS: dict[str, str] = {
    "api": "orders",
    "orders": "orders",
    "postgres-exporter": "postgres",
    "redis-exporter": "redis",
    "prometheus": "prometheus",
}
# native service -> its name in compose.yaml (profile `stock`), beside the reference sandbox's
COMPOSE_SERVICES: dict[str, str] = {
    "postgres": "stock-postgres",
    "redis": "stock-redis",
    "orders": "orders",
    "traffic": "stock-traffic",
    "postgres-exporter": "stock-postgres-exporter",
    "redis-exporter": "stock-redis-exporter",
    "prometheus": "stock-prometheus",
}
APP_ROLE = "orders"  # the service's database role and database
MIGRATION = "migration"  # the program that holds the lock of the held-lock fault
MIGRATION_APPLICATION = "orders-migration"  # its application_name in pg_stat_activity
START_TIMEOUT_S = 60.0
HEALTH_PATH = "/actuator/health"
STARTED_AFTER_SCHEMA = ("orders", "postgres-exporter")
STARTED_AFTER_ORDERS = ("traffic",)
# the Python programs and the module each runs (`python -m MODULE`), in either driver
MODULES: dict[str, str] = {
    "orders": "sandbox.stock.orders",
    "traffic": "sandbox.stock.traffic",
    MIGRATION: "sandbox.stock.migration",
}
DIR_VARIABLE = "DRILLBOOK_STOCK_DIR"


def stock_dir() -> Path:
    """The stock stack's working directory: `$DRILLBOOK_STOCK_DIR`, else `.sandbox-stock/`."""
    override = os.environ.get(DIR_VARIABLE)
    return Path(override).resolve() if override else REPO_ROOT / ".sandbox-stock"


def stock_endpoints(ports: Mapping[str, int]) -> dict[str, str]:
    """What the state file publishes. `api` is the orders service too: checks read `api`."""
    orders = f"http://127.0.0.1:{ports['orders']}"
    return {
        "api": orders,
        "orders": orders,
        "prometheus": f"http://127.0.0.1:{ports['prometheus']}",
        "postgres": f"postgresql://{APP_ROLE}@127.0.0.1:{ports['postgres']}/{APP_ROLE}",
        "redis": f"redis://127.0.0.1:{ports['redis']}/0",
    }


class StockDriver(NativeDriver):
    """The stock stack as local processes under its own supervisord."""

    services: ClassVar[tuple[str, ...]] = STOCK_SERVICES

    def __init__(self, root: Path | None = None) -> None:
        root = (root or stock_dir()).resolve()
        super().__init__(root=root, state_file=root / "state.json")
        self._deferred = frozenset(("postgres", *STARTED_AFTER_SCHEMA, *STARTED_AFTER_ORDERS, MIGRATION))

    def up(self, *, timeout_s: float = 90.0, wait_for_rates: bool = True) -> None:
        """Start the stack, wait until every service is ready (and, with `wait_for_rates`,
        until Prometheus holds a whole rate window of the orders service), write the state."""
        started_up = time.monotonic()
        deadline = started_up + timeout_s
        binaries = Binaries.find()
        if self._supervisord_pid() is not None:
            if self.state_file.exists() and set(self.status().values()) == {"running"}:
                log.info("the stock stack in %s is already up", self.layout.root)
                return
            log.info("stopping the half-running stock stack in %s", self.layout.root)
            self.down()
        elif self._unsupervised():
            self.down()  # never wipe the directory under a live PostgreSQL
        self._recreate_root()
        ports = pick_ports(names=LISTENERS)
        self.layout.ports.write_text(json.dumps(ports, indent=2))
        endpoints = stock_endpoints(ports)
        probes = self._probes(ports)
        failing: str | None = None
        try:
            self._write_configs_stock(binaries, ports, endpoints)
            self._start_supervisord(binaries, deadline)
            self._initdb(binaries, timeout_s=deadline - time.monotonic())
            self._start_now(("postgres",))
            failing = "postgres"
            self._await("postgres", *probes["postgres"], deadline)
            _bootstrap_database(_admin_dsn(ports))
            self._start_now(STARTED_AFTER_SCHEMA)
            for service in ("redis", "orders"):
                failing = service
                self._await(service, *probes[service], deadline)
            self._start_now(STARTED_AFTER_ORDERS)
            for service in ("postgres-exporter", "redis-exporter", "prometheus", "traffic"):
                failing = service
                self._await(service, *probes[service], deadline)
            failing = "prometheus"
            query = 'up{job="orders"} == 1'
            self._await(
                "prometheus",
                partial(prometheus_has_sample, endpoints["prometheus"], query),
                f"query {query} at {endpoints['prometheus']}",
                deadline,
                what="prometheus scraping orders",
            )
            failing = None
            wait_for(
                "every stock service RUNNING under supervisord",
                self._every_service_running,
                deadline=deadline,
                tried="supervisorctl status",
                hint=f"see {self.layout.root / 'supervisord.log'}.",
            )
            if wait_for_rates:
                wait_for_rate_window(
                    endpoints["prometheus"],
                    job="orders",
                    deadline=deadline,
                    hint=f"read {self.layout.log('prometheus')}",
                )
        except SandboxError as exc:
            tail = self._log_tail(failing)
            self.down()
            raise StartupError(
                f"stock stack start-up failed ({failing or 'set-up'}): {exc}", service=failing, log_tail=tail
            ) from exc
        except BaseException:
            self.down()
            raise
        self._record_processes(self._process_infos())
        _write_private(
            self.state_file,
            {
                "driver": "native",
                "stack": "stock",
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "endpoints": endpoints,
                "platform": platform_commands(self._cli()),
                "services": list(STOCK_SERVICES),
                "prometheus_jobs": STOCK_JOBS,
                "secrets": {},
            },
        )
        log.info("stock stack up in %.1fs", time.monotonic() - started_up)

    def pid(self, service: str) -> int:
        """The pid of `service`'s process under supervisord; 0 when it does not run."""
        self._need_supervisord("signal", self.check_service(service))
        return self._supervised_pid(service)

    def start_migration(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the lock-holding migration; return once its lock is granted."""
        self._need_supervisord("start", MIGRATION)
        try:
            self._rpc().supervisor.startProcess(MIGRATION, False)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode != Faults.ALREADY_STARTED:
                raise SandboxError(f"supervisord could not start {MIGRATION}: {exc.faultString}") from exc
        dsn = _admin_dsn(self._ports())
        self._await(
            MIGRATION,
            partial(_lock_granted, dsn),
            "pg_locks: a granted AccessExclusiveLock on orders",
            time.monotonic() + timeout_s,
            what="the migration's lock on orders",
        )

    def stop_migration(self) -> None:
        """Stop the migration (its session ends, the lock goes); a no-op when it does not run."""
        self._need_supervisord("stop", MIGRATION)
        try:
            self._rpc().supervisor.stopProcess(MIGRATION, True)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode != Faults.NOT_RUNNING:
                raise SandboxError(f"supervisord could not stop {MIGRATION}: {exc.faultString}") from exc

    # -- helpers ---------------------------------------------------------------------------

    def _cli(self) -> list[str]:
        return [
            sys.executable, "-m", "sandbox", "--stack", "stock", "--dir", str(self.layout.root),
            "--driver", "native",
        ]  # fmt: skip

    def _probes(
        self, ports: Mapping[str, int], *, whole: bool = True
    ) -> dict[str, tuple[Callable[[], None], str]]:
        endpoints = stock_endpoints(ports)
        health = f"{endpoints['orders']}{HEALTH_PATH}"
        urls = {
            "postgres-exporter": f"http://127.0.0.1:{ports['postgres-exporter']}/metrics",
            "redis-exporter": f"http://127.0.0.1:{ports['redis-exporter']}/metrics",
            "prometheus": f"{endpoints['prometheus']}/-/ready",
        }
        admin_dsn = _admin_dsn(ports)
        return {
            "postgres": (partial(postgres_accepts, admin_dsn), f"psycopg.connect({admin_dsn!r})"),
            "redis": (partial(redis_pings, endpoints["redis"]), f"PING {endpoints['redis']}"),
            "orders": (partial(http_ok, health), f"GET {health} == 200")
            if whole
            else (partial(http_answers, health), f"GET {health} (any HTTP answer)"),
            **{service: (partial(http_ok, url), f"GET {url} == 200") for service, url in urls.items()},
            "traffic": (
                partial(_beats_after, self.layout.heartbeat, time.time()),
                f"a fresh touch of {self.layout.heartbeat}",
            ),
        }

    def _write_configs_stock(
        self, binaries: Binaries, ports: Mapping[str, int], endpoints: Mapping[str, str]
    ) -> None:
        loopback = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        prometheus_yml = self.layout.prometheus / "prometheus.yml"
        prometheus_yml.write_text(
            (PACKAGE_DIR / "config" / "prometheus.stock.yml")
            .read_text()
            .replace("${orders_target}", loopback["orders"])
            .replace("${postgres_exporter_target}", loopback["postgres-exporter"])
            .replace("${redis_exporter_target}", loopback["redis-exporter"])
            .replace("${prometheus_target}", loopback["prometheus"])
        )
        python = [sys.executable, "-m"]
        programs = {
            **store_programs(binaries, self.layout, ports, loopback, endpoints["redis"], prometheus_yml),
            **{name: [*python, module] for name, module in MODULES.items()},
        }
        environments = {
            "orders": {
                "PYTHONUNBUFFERED": "1",
                "ORDERS_PORT": str(ports["orders"]),
                "DATABASE_URL": endpoints["postgres"],
                "REDIS_URL": endpoints["redis"],
            },
            "traffic": {
                "PYTHONUNBUFFERED": "1",
                "ORDERS_URL": endpoints["orders"],
                "TRAFFIC_HEARTBEAT": str(self.layout.heartbeat),
            },
            MIGRATION: {"PYTHONUNBUFFERED": "1", "DATABASE_URL": endpoints["postgres"]},
            "postgres-exporter": {
                # connect_timeout: with PostgreSQL stopped, a scrape still answers pg_up 0 in time
                "DATA_SOURCE_NAME": f"{endpoints['postgres']}?sslmode=disable&connect_timeout=1",
            },
        }
        extra: dict[str, list[str]] = {
            name: [f"autostart={'false' if name in self._deferred else 'true'}"] for name in programs
        }
        extra["postgres"] += [
            "stopsignal=INT",
            *([f"user={self.postgres_user}"] if self.postgres_user else []),
        ]
        for name, env in environments.items():
            extra[name].append(
                "environment=" + ",".join(f'{key}="{_ini(value)}"' for key, value in env.items())
            )
            if name in MODULES:
                extra[name].append(f"directory={_ini(str(REPO_ROOT))}")
        self._write_supervisord_conf(programs, extra)


def _admin_dsn(ports: Mapping[str, int]) -> str:
    return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{ports['postgres']}/postgres"


def _bootstrap_database(admin_dsn: str) -> None:
    """The application role (with pg_monitor, so that the exporter sees every session) and
    its database; the orders service makes its own table when it starts."""
    role = sql.Identifier(APP_ROLE)
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=2) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(role))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    except psycopg.Error as exc:
        raise SandboxError(
            f"could not bootstrap the stock database: {type(exc).__name__}: {exc}\n"
            "Hint: read the postgres log in the stock stack's logs/ folder."
        ) from exc


def _lock_granted(admin_dsn: str) -> None:
    """Some session holds a granted AccessExclusiveLock on the orders table."""
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{APP_ROLE}"  # the lock's relation is in that database
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'public.orders'::regclass"
                " AND mode = 'AccessExclusiveLock' AND granted"
            ).fetchone()
    except psycopg.Error as exc:
        raise NotReady(str(exc).strip()) from exc
    if not row or not row[0]:
        raise NotReady("no granted AccessExclusiveLock on orders yet")


__all__ = [
    "COMPOSE_SERVICES",
    "LISTENERS",
    "MODULES",
    "STOCK_JOBS",
    "STOCK_SERVICES",
    "StockDriver",
    "stock_dir",
    "stock_endpoints",
]
