"""The drillbook sandbox: the reference service and its dependencies, on this machine.

    driver = get_driver()            # "auto": compose when a Docker engine answers, else native
    driver.up(timeout_s=90)          # start, wait for readiness, write state_path()
    driver.endpoints()               # {"api": "http://127.0.0.1:P", "postgres": "postgresql://..."}
    with stopped(driver, "redis"):   # a dependency outage for one block
        ...
    driver.down()

The same from a shell: `python -m sandbox up|down|status|endpoints|logs|stop|start`.

Faults for drills and game days live in `sandbox.faults` (data in `sandbox/faults.yml`):

    from sandbox.faults import Injector
    Injector.attach(driver).inject("db-lock-contention")   # python -m sandbox inject NAME

`up` writes the state file (mode 0600): driver, endpoints, platform commands, services,
Prometheus jobs and `secrets.admin_token`; the fault catalogue's chaos token sits in a
private file next to it and never in the state.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from sandbox._driver import SERVICES, Driver, State, read_state, replica_dir, state_path, stopped, use_replica
from sandbox._errors import (
    CommandError,
    NotRunning,
    ReadinessTimeout,
    SandboxError,
    StartupError,
)

__all__ = [
    "SERVICES",
    "CommandError",
    "Driver",
    "NotRunning",
    "ReadinessTimeout",
    "SandboxError",
    "StartupError",
    "State",
    "docker_engine_answers",
    "get_driver",
    "read_state",
    "replica_dir",
    "state_path",
    "stopped",
    "use_replica",
]

DOCKER_PROBE_TIMEOUT_S = 5.0


def docker_engine_answers(*, timeout_s: float = DOCKER_PROBE_TIMEOUT_S) -> bool:
    """Whether `docker info` and `docker compose version` both succeed within `timeout_s` each."""
    if shutil.which("docker") is None:
        return False
    for argv in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return False
        if done.returncode != 0:
            return False
    return True


def get_driver(kind: Literal["auto", "native", "compose"] = "auto") -> Driver:
    """The driver of `kind`.

    "auto" follows the state file of a running sandbox when there is one, so that
    `down` stops what `up` started; otherwise compose when a Docker engine answers,
    native when not.
    """
    if kind == "auto":
        try:
            kind = read_state(state_path())["driver"]
        except NotRunning:
            kind = "compose" if docker_engine_answers() else "native"
    # imported here: the api's container image carries neither supervisor nor httpx
    if kind == "compose":
        from sandbox._compose import ComposeDriver

        return ComposeDriver()
    if kind == "native":
        from sandbox._native import NativeDriver

        return NativeDriver()
    raise ValueError(f"unknown sandbox driver {kind!r}; expected auto, native or compose")
