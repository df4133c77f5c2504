"""The driver interface, the state file it writes, and where the sandbox lives."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal, TypedDict

from sandbox._errors import CommandError, NotRunning

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES: tuple[str, ...] = ("api", "postgres", "redis", "prometheus")
PROMETHEUS_JOBS: dict[str, str] = {"api": "api"}
APP_ROLE = "drillbook"  # the service's database role and database name

DriverKind = Literal["native", "compose"]
PlatformVerb = Literal["restart", "stop", "start"]


class State(TypedDict):
    """What `up` writes to `state_path()`; `checks` reads it as plain JSON."""

    driver: DriverKind
    started_at: str
    endpoints: dict[str, str]
    platform: dict[PlatformVerb, list[str]]  # argv with a "{service}" placeholder
    services: list[str]
    prometheus_jobs: dict[str, str]


def sandbox_dir() -> Path:
    """The working directory: `$DRILLBOOK_SANDBOX_DIR`, else `.sandbox/` in the repo root."""
    override = os.environ.get("DRILLBOOK_SANDBOX_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".sandbox"


def state_path() -> Path:
    """The state file: `$DRILLBOOK_SANDBOX_STATE`, else `state.json` in `sandbox_dir()`."""
    override = os.environ.get("DRILLBOOK_SANDBOX_STATE")
    return Path(override).resolve() if override else sandbox_dir() / "state.json"


def loopback_endpoints(*, api: int, postgres: int, redis: int, prometheus: int) -> dict[str, str]:
    """The endpoints of services published on these loopback ports."""
    return {
        "api": f"http://127.0.0.1:{api}",
        "prometheus": f"http://127.0.0.1:{prometheus}",
        "postgres": f"postgresql://{APP_ROLE}@127.0.0.1:{postgres}/{APP_ROLE}",
        "redis": f"redis://127.0.0.1:{redis}/0",
    }


def write_state(
    path: Path,
    *,
    driver: DriverKind,
    endpoints: Mapping[str, str],
    platform_prefix: Sequence[str],
) -> State:
    """Write the state file atomically; `platform_prefix + [verb, "{service}"]` per verb."""
    state: State = {
        "driver": driver,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "endpoints": dict(endpoints),
        "platform": {verb: [*platform_prefix, verb, "{service}"] for verb in ("restart", "stop", "start")},
        "services": list(SERVICES),
        "prometheus_jobs": dict(PROMETHEUS_JOBS),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(state, tmp, indent=2)
    Path(tmp.name).chmod(0o644)  # readable by whoever runs the runbooks
    Path(tmp.name).replace(path)
    return state


def read_state(path: Path) -> State:
    """Read the state file; `NotRunning` when there is none."""
    try:
        state: State = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotRunning(
            f"no sandbox state at {path}\nHint: start one with `python -m sandbox up`."
        ) from None
    return state


class Driver(ABC):
    """Runs the sandbox services somewhere; every method names services from `SERVICES`."""

    kind: ClassVar[DriverKind]
    services: ClassVar[tuple[str, ...]] = SERVICES

    def __init__(self, *, state_file: Path | None = None) -> None:
        self.state_file = state_file or state_path()

    @abstractmethod
    def up(self, *, timeout_s: float = 90.0) -> None:
        """Start every service, wait until all are ready, write the state file."""

    @abstractmethod
    def down(self) -> None:
        """Stop everything and remove the state file; a no-op when nothing runs."""

    @abstractmethod
    def status(self) -> dict[str, str]:
        """Service -> state ("running", "stopped", "exited", ...); "running" means up."""

    def endpoints(self) -> dict[str, str]:
        """Service -> URL or DSN, from the state file."""
        return dict(read_state(self.state_file)["endpoints"])

    @abstractmethod
    def logs(self, service: str, *, lines: int = 50) -> str:
        """The last `lines` lines of a service's log."""

    @abstractmethod
    def stop(self, service: str) -> None:
        """Stop one service; it stays down until `start`."""

    @abstractmethod
    def start(self, service: str) -> None:
        """Start one stopped service again."""


def run_command(argv: Sequence[str], *, timeout_s: float, hint: str, user: str | None = None) -> str:
    """Run `argv` (never a shell), as `user` if given; return its stdout.

    Raises `CommandError` carrying the output and `hint` when it fails or times out.
    """
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            user=user,
            cwd="/",  # a directory any user may enter: initdb runs as postgres and checks its cwd
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
        raise CommandError(argv, None, partial, hint=hint) from exc
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stdout + done.stderr, hint=hint)
    return done.stdout


def check_service(service: str) -> str:
    """Return `service` when it is one of `SERVICES`; raise `ValueError` otherwise."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return service


@contextmanager
def stopped(driver: Driver, service: str) -> Iterator[None]:
    """Stop `service` for the block and start it again afterwards, even on error."""
    driver.stop(service)
    try:
        yield
    finally:
        driver.start(service)
