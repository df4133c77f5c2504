"""Compose driver: the sandbox as Docker Compose services from the root `compose.yaml`.

Every command is an argv list: `docker compose -f compose.yaml -p drillbook VERB ...`.
Compose owns readiness (`up --wait` on each service's healthcheck); the driver
then reads the published loopback ports and waits until Prometheus scrapes the api.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sandbox._driver import (
    REPO_ROOT,
    SERVICES,
    Driver,
    check_service,
    loopback_endpoints,
    run_command,
    write_state,
)
from sandbox._errors import CommandError, SandboxError, StartupError
from sandbox._readiness import prometheus_has_sample, wait_for

log = logging.getLogger("sandbox")

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
PROJECT = "drillbook"
CONTAINER_PORTS = {"api": 8000, "postgres": 5432, "redis": 6379, "prometheus": 9090}
COMMAND_TIMEOUT_S = 120.0
HINT = (
    "`docker info` and `docker compose version` must both work (Compose v2 plugin);"
    " without Docker use `--driver native`."
)


class ComposeDriver(Driver):
    """The sandbox as the `drillbook` Compose project."""

    kind = "compose"

    def __init__(self) -> None:
        super().__init__()
        self.base = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", PROJECT]

    def _compose(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        return run_command([*self.base, *args], timeout_s=timeout_s, hint=HINT)

    def up(self, *, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        try:
            self._compose(
                "up",
                "--wait",
                "--wait-timeout",
                str(int(timeout_s)),
                "-d",
                timeout_s=timeout_s + 30,  # compose enforces --wait-timeout itself
            )
            endpoints = self._endpoints()
            query = 'up{job="api"} == 1'
            wait_for(
                "prometheus scraping api",
                lambda: prometheus_has_sample(endpoints["prometheus"], query),
                deadline=deadline,
                tried=f"query {query} at {endpoints['prometheus']}",
                hint="read `python -m sandbox logs prometheus --driver compose`.",
            )
        except SandboxError as exc:
            try:
                tail = self._compose("logs", "--no-color", "--tail", "20")
            except CommandError as logs_error:
                tail = logs_error.output
            self.down()
            raise StartupError(f"compose start-up failed: {exc}", service=None, log_tail=tail) from exc
        write_state(self.state_file, driver="compose", endpoints=endpoints, platform_prefix=self.base)
        log.info("compose sandbox ready")

    def _endpoints(self) -> dict[str, str]:
        ports: dict[str, int] = {}
        for service, container_port in CONTAINER_PORTS.items():
            published = self._compose("port", service, str(container_port)).strip()
            ports[service] = int(published.rsplit(":", 1)[1])  # "127.0.0.1:49153"
        return loopback_endpoints(**ports)

    def down(self) -> None:
        self._compose("down", "-v", "--remove-orphans")
        self.state_file.unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        out = self._compose("ps", "--all", "--format", "json").strip()
        # Compose >= 2.21 prints one JSON object per line; older versions print one array.
        rows: list[dict[str, Any]] = (
            json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]
        )
        states = {row["Service"]: str(row["State"]).lower() for row in rows}
        return {service: states.get(service, "absent") for service in SERVICES}

    def logs(self, service: str, *, lines: int = 50) -> str:
        return self._compose("logs", "--no-color", "--tail", str(lines), check_service(service))

    def stop(self, service: str) -> None:
        self._compose("stop", check_service(service))

    def start(self, service: str) -> None:
        self._compose("start", check_service(service))
