"""Compose driver: the sandbox as Docker Compose services from the root `compose.yaml`.

Every command is an argv list: `docker compose -f compose.yaml -p PROJECT VERB ...`.
Compose owns readiness (`up --build --wait` on each service's healthcheck); the driver
then reads the published loopback ports, waits until Prometheus scrapes the api and
warms the cache. The driver picks those host ports itself (compose.yaml reads them from
DRILLBOOK_<SERVICE>_PORT): Docker would give a container a new ephemeral port each time
it starts, and a service that a drill stops and starts again must keep its endpoint.
The project is `drillbook` for the default sandbox directory and `drillbook-<hash of
the directory>` for any other, so sandboxes run side by side.

`start SERVICE` (and the runbooks' `start` and `restart` platform commands) returns once
the service's healthcheck passes again, and fails with the tail of its log when the
container exits or stays unhealthy: a restart that does not come back is not "applied".

The admin and chaos tokens are fresh at each `up` and reach the containers through
the environment of the `docker compose` process (compose.yaml interpolates them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox._driver import (
    REPO_ROOT,
    SERVICES,
    Driver,
    chaos_path,
    check_service,
    loopback_endpoints,
    new_token,
    platform_commands,
    record_started,
    run_command,
    sandbox_dir,
    warm_cache,
)
from sandbox._errors import CommandError, SandboxError, StartupError
from sandbox._ports import pick_ports
from sandbox._readiness import prometheus_has_sample, wait_for, wait_for_rate_window

log = logging.getLogger("sandbox")

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
DEFAULT_PROJECT = "drillbook"
# service -> the container port the driver reads with `docker compose port`
CONTAINER_PORTS = {
    "api": 8000,
    "upstream": 8000,
    "prometheus": 9090,
    "alertmanager": 9093,
    "receiver": 8000,
    "blackbox": 9115,
    "postgres": 5432,
    "redis": 6379,
    "chaos": 8000,
}
COMMAND_TIMEOUT_S = 120.0
WAIT_HEALTHY_S = 60  # a restarted or started service's healthcheck must pass within this
# `up` on one service that creates nothing and returns once its healthcheck passes; it
# fails when the container exits or stays unhealthy past the timeout.
WAIT_ARGS = (
    "up", "--detach", "--wait", "--wait-timeout", str(WAIT_HEALTHY_S),
    "--no-deps", "--no-build", "--no-recreate",
)  # fmt: skip
LOG_TAIL_LINES = 30
HINT = (
    "`docker info` and `docker compose version` must both work (Compose v2 plugin);"
    " without Docker use `--driver native`."
)

Runner = Callable[..., str]  # run_command's signature: (argv, *, timeout_s, hint, env=None) -> stdout


def project_name() -> str:
    """`drillbook` for the repository's `.sandbox/`, a distinct name for any other directory."""
    folder = sandbox_dir()
    if folder == REPO_ROOT / ".sandbox":
        return DEFAULT_PROJECT
    return f"{DEFAULT_PROJECT}-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"


def port_variable(service: str) -> str:
    """The compose.yaml variable that fixes `service`'s host port, e.g. DRILLBOOK_API_PORT."""
    return f"DRILLBOOK_{service.upper().replace('-', '_')}_PORT"


def healthy_platform_commands(base: Sequence[str]) -> dict[str, list[str]]:
    """The runbooks' platform commands, `start` and `restart` returning once the service is
    healthy again (`stop` as compose has it).

    `docker compose restart` and `start` return when the container runs, before the
    service listens: a runbook's next check (or a drill's clean-up) would find it still
    down. Each is followed by `up --wait` on that service alone, which creates nothing
    and returns when its healthcheck passes. `{service}` reaches the shell as an
    argument, never as script text.
    """
    prefix = shlex.join(base)
    wait = f'{prefix} {shlex.join(WAIT_ARGS)} "$1"'

    def then_wait(verb: str) -> list[str]:
        return ["sh", "-c", f'{prefix} {verb} "$1" && {wait}', verb, "{service}"]

    return {**platform_commands(base), "restart": then_wait("restart"), "start": then_wait("start")}


def parse_ps(output: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: one object per line (>= 2.21) or one array (older)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class ComposeDriver(Driver):
    """The sandbox as one Compose project."""

    kind = "compose"

    def __init__(self, *, runner: Runner = run_command) -> None:
        super().__init__()
        self.project = project_name()
        self.base = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.project]
        self._runner = runner

    def _compose(
        self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S, env: Mapping[str, str] | None = None
    ) -> str:
        return self._runner([*self.base, *args], timeout_s=timeout_s, hint=HINT, env=env)

    def up(self, *, timeout_s: float = 300.0, wait_for_rates: bool = True) -> None:
        deadline = time.monotonic() + timeout_s
        if self.state_file.exists() and set(self.status().values()) == {"running"}:
            log.info("the compose sandbox %s is already up", self.project)
            return  # idempotent: same containers, ports and tokens
        admin_token, chaos_token = new_token(), new_token()
        picked = pick_ports()  # free loopback ports, none that another sandbox just picked
        env = {
            **os.environ,
            "DRILLBOOK_ADMIN_TOKEN": admin_token,
            "DRILLBOOK_CHAOS_TOKEN": chaos_token,
            **{port_variable(service): str(picked[service]) for service in CONTAINER_PORTS},
        }
        try:
            self._compose(
                "up",
                "--build",
                "--wait",
                "--wait-timeout",
                str(int(timeout_s)),
                "-d",
                timeout_s=timeout_s + 30,  # compose enforces --wait-timeout itself
                env=env,
            )
            ports = self._ports()
            self.after_up(
                loopback_endpoints(ports), admin_token=admin_token, deadline=deadline, rates=wait_for_rates
            )
        except SandboxError as exc:
            failing = self._first_unhealthy()
            try:
                tail = self._compose(
                    "logs", "--no-color", "--tail", str(LOG_TAIL_LINES), *([failing] if failing else [])
                )
            except CommandError as logs_error:
                tail = logs_error.output
            self.down()
            raise StartupError(
                f"compose start-up failed ({failing or 'see the logs'}): {exc}",
                service=failing,
                log_tail=tail,
            ) from exc
        endpoints = loopback_endpoints(ports)
        record_started(
            self.state_file,
            driver="compose",
            endpoints=endpoints,
            ports=ports,
            platform=healthy_platform_commands(self.base),
            admin_token=admin_token,
            chaos_token=chaos_token,
        )
        log.info("compose sandbox %s ready", self.project)

    def after_up(
        self, endpoints: Mapping[str, str], *, admin_token: str, deadline: float, rates: bool = True
    ) -> None:
        """Once compose says healthy: Prometheus scrapes the api, the cache is warm, and with
        `rates`, Prometheus holds a whole rate window of the api."""
        query = 'up{job="api"} == 1'
        wait_for(
            "prometheus scraping api",
            lambda: prometheus_has_sample(endpoints["prometheus"], query),
            deadline=deadline,
            tried=f"query {query} at {endpoints['prometheus']}",
            hint="read `python -m sandbox logs prometheus --driver compose`.",
        )
        warm_cache(endpoints["api"], admin_token, timeout_s=max(1.0, deadline - time.monotonic()))
        if rates:
            log.info("waiting for a rate window of api metrics, so that runbooks can judge rates")
            wait_for_rate_window(
                endpoints["prometheus"],
                deadline=deadline,
                hint="read `python -m sandbox logs prometheus --driver compose`.",
            )

    def _ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        for service, container_port in CONTAINER_PORTS.items():
            published = self._compose("port", service, str(container_port)).strip()
            ports[service] = int(published.rsplit(":", 1)[1])  # "127.0.0.1:49153"
        return ports

    def _first_unhealthy(self) -> str | None:
        """The first service (in start-up order) that is not running and healthy, if any."""
        try:
            rows = parse_ps(self._compose("ps", "--all", "--format", "json"))
        except (CommandError, ValueError):
            return None
        found = {row["Service"]: row for row in rows}
        for service in SERVICES:
            row = found.get(service)
            if row is None or str(row.get("State")).lower() != "running":
                return service
            if str(row.get("Health", "healthy")).lower() not in ("healthy", ""):
                return service
        return None

    def down(self) -> None:
        self._compose("down", "-v", "--remove-orphans")
        self.state_file.unlink(missing_ok=True)
        chaos_path().unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        rows = parse_ps(self._compose("ps", "--all", "--format", "json"))
        states = {row["Service"]: str(row["State"]).lower() for row in rows}
        return {service: states.get(service, "absent") for service in SERVICES}

    def logs(self, service: str, *, lines: int = 50) -> str:
        return self._compose("logs", "--no-color", "--tail", str(lines), check_service(service))

    def stop(self, service: str) -> None:
        self._compose("stop", check_service(service))

    def start(self, service: str) -> None:
        """Start `service` and return once compose calls it healthy; `StartupError` with the
        tail of its log when its container exits or stays unhealthy."""
        check_service(service)
        try:
            self._compose("start", service)
            self._compose(*WAIT_ARGS, service, timeout_s=WAIT_HEALTHY_S + 30)
        except CommandError as exc:
            try:
                tail = self._compose("logs", "--no-color", "--tail", str(LOG_TAIL_LINES), service)
            except CommandError as logs_error:
                tail = logs_error.output
            raise StartupError(f"{service} did not start: {exc}", service=service, log_tail=tail) from exc
