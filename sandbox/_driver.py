"""The driver interface, the state file it writes, and where the sandbox lives."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal, NotRequired, TypedDict

import httpx

from sandbox._errors import CommandError, NotRunning, SandboxError
from sandbox.service.corpus import ROLLOUT_SKILL, SKILL_WEIGHTS

REPO_ROOT = Path(__file__).resolve().parent.parent
# Supervisor program names and compose service names, in start-up order.
SERVICES: tuple[str, ...] = (
    "postgres",
    "redis",
    "upstream",
    "api",
    "traffic",
    "chaos",
    "receiver",
    "alertmanager",
    "blackbox",
    "postgres-exporter",
    "redis-exporter",
    "prometheus",
)
# service -> Prometheus job whose `up` says the service answers (the exporters' jobs are
# named after what they export, so `up{job="postgres"}` is the exporter, not the database).
PROMETHEUS_JOBS: dict[str, str] = {
    "api": "api",
    "upstream": "upstream",
    "postgres-exporter": "postgres",
    "redis-exporter": "redis",
    "blackbox": "blackbox",
    "prometheus": "prometheus",
}
APP_ROLE = "drillbook"  # the service's database role and database name
CHAOS_FILE = "chaos.json"  # the fault catalogue's private endpoints and token, mode 0600

DriverKind = Literal["native", "compose"]
PlatformVerb = Literal["restart", "stop", "start"]


class State(TypedDict):
    """What `up` writes to `state_path()` (mode 0600); `checks` reads it as plain JSON."""

    driver: DriverKind
    started_at: str
    endpoints: dict[str, str]
    platform: dict[PlatformVerb, list[str]]  # argv with a "{service}" placeholder
    services: list[str]
    prometheus_jobs: dict[str, str]
    secrets: dict[str, str]  # {"admin_token": ...}: the admin API's bearer token
    # Where `drillbook receive --sandbox` listens, when someone runs it: Alertmanager posts there
    # too. Not an endpoint of the sandbox's: nothing of the sandbox's listens on it.
    drillbook_receiver: NotRequired[str]


class ChaosAccess(TypedDict):
    """What `up` writes to `chaos_path()` for the fault catalogue: never for runbooks."""

    token: str
    api: str
    upstream: str
    agent: str


def sandbox_dir() -> Path:
    """The working directory: `$DRILLBOOK_SANDBOX_DIR`, else `.sandbox/` in the repo root."""
    override = os.environ.get("DRILLBOOK_SANDBOX_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".sandbox"


def replica_dir(index: int) -> Path:
    """The working directory of replica `index`: 0 is `sandbox_dir()`, N its sibling `<dir>-N`.

    Replicas are whole, independent sandboxes; parallel test workers take one each, so that
    drills that inject faults never see one another's."""
    if index < 0:
        raise ValueError(f"a sandbox replica index is 0 or more, not {index}")
    base = sandbox_dir()
    return base if index == 0 else base.with_name(f"{base.name}-{index}")


def use_replica(environ: MutableMapping[str, str], index: int) -> None:
    """Point `environ` (os.environ, or a child's copy) at replica `index` of the sandbox."""
    environ["DRILLBOOK_SANDBOX_DIR"] = str(replica_dir(index))
    environ.pop("DRILLBOOK_SANDBOX_STATE", None)  # it names a single sandbox's file


def state_path() -> Path:
    """The state file: `$DRILLBOOK_SANDBOX_STATE`, else `state.json` in `sandbox_dir()`."""
    override = os.environ.get("DRILLBOOK_SANDBOX_STATE")
    return Path(override).resolve() if override else sandbox_dir() / "state.json"


def chaos_path() -> Path:
    """The fault catalogue's private file, next to the state file."""
    return state_path().parent / CHAOS_FILE


# Published endpoints: service -> (scheme and path around "127.0.0.1:PORT").
ENDPOINT_FORMS: dict[str, str] = {
    "api": "http://{host}",
    "upstream": "http://{host}",
    "prometheus": "http://{host}",
    "alertmanager": "http://{host}",
    "receiver": "http://{host}",
    "blackbox": "http://{host}",
    "postgres": f"postgresql://{APP_ROLE}@{{host}}/{APP_ROLE}",
    "redis": "redis://{host}/0",
}


def loopback_endpoints(ports: Mapping[str, int]) -> dict[str, str]:
    """The public endpoints of services published on these loopback ports."""
    return {name: form.format(host=f"127.0.0.1:{ports[name]}") for name, form in ENDPOINT_FORMS.items()}


def warm_cache(api_url: str, admin_token: str, *, timeout_s: float = 30.0) -> None:
    """Warm the api's cache for the traffic's skills, as a deploy does before taking traffic."""
    skills = [*SKILL_WEIGHTS, ROLLOUT_SKILL]
    try:
        response = httpx.post(
            f"{api_url}/admin/cache/warm",
            json={"skills": skills},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise SandboxError(f"warming the cache failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200 or sorted(response.json()["warmed"]) != sorted(skills):
        raise SandboxError(f"warming the cache failed: HTTP {response.status_code}: {response.text[:300]}")


def new_token() -> str:
    """A fresh random token (admin or chaos), URL- and supervisord-safe."""
    return secrets.token_urlsafe(24)


def _write_private(path: Path, document: Mapping[str, object]) -> None:
    """Write JSON atomically, readable by the owner only (it carries tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        Path(tmp.name).chmod(0o600)
        json.dump(document, tmp, indent=2)
    Path(tmp.name).replace(path)


def platform_commands(prefix: Sequence[str]) -> dict[str, list[str]]:
    """The platform command of each verb: `prefix + [verb, "{service}"]`."""
    return {verb: [*prefix, verb, "{service}"] for verb in ("restart", "stop", "start")}


def write_state(
    path: Path,
    *,
    driver: DriverKind,
    endpoints: Mapping[str, str],
    platform: Mapping[str, Sequence[str]],
    admin_token: str,
    receiver_token: str | None = None,
    drillbook_receiver: str | None = None,
) -> State:
    """Write the state file atomically, mode 0600; `platform` has a command per verb."""
    state: State = {
        "driver": driver,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "endpoints": dict(endpoints),
        "platform": {verb: list(argv) for verb, argv in platform.items()},
        "services": list(SERVICES),
        "prometheus_jobs": dict(PROMETHEUS_JOBS),
        "secrets": {"admin_token": admin_token},
    }
    if receiver_token is not None:  # what the sandbox's Alertmanager sends `drillbook receive`
        state["secrets"]["receiver_token"] = receiver_token
    if drillbook_receiver is not None:
        state["drillbook_receiver"] = drillbook_receiver
    _write_private(path, state)
    return state


def write_chaos_access(path: Path, access: ChaosAccess) -> None:
    _write_private(path, access)


def record_started(
    state_file: Path,
    *,
    driver: DriverKind,
    endpoints: Mapping[str, str],
    ports: Mapping[str, int],
    platform: Mapping[str, Sequence[str]],
    admin_token: str,
    chaos_token: str,
    receiver_token: str | None = None,
    drillbook_receiver: str | None = None,
) -> State:
    """Write what a started sandbox leaves behind: the private chaos file, then the state file."""
    write_chaos_access(
        chaos_path(),
        {
            "token": chaos_token,
            "api": endpoints["api"],
            "upstream": endpoints["upstream"],
            "agent": f"http://127.0.0.1:{ports['chaos']}",
        },
    )
    return write_state(
        state_file,
        driver=driver,
        endpoints=endpoints,
        platform=platform,
        admin_token=admin_token,
        receiver_token=receiver_token,
        drillbook_receiver=drillbook_receiver,
    )


def read_chaos_access(path: Path) -> ChaosAccess:
    try:
        access: ChaosAccess = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotRunning(
            f"no sandbox chaos file at {path}\nHint: start the sandbox with `python -m sandbox up`."
        ) from None
    return access


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
    def up(self, *, timeout_s: float = 90.0, wait_for_rates: bool = True) -> None:
        """Start every service, wait until all are ready, write the state file.

        With `wait_for_rates`, also wait until Prometheus holds a whole rate window of
        the api, so that runbooks judge rates over a full window (about 15 s more);
        tests of the sandbox's own machinery skip that wait.
        Idempotent: a sandbox that is already up is left as it is; a half-running one is
        stopped and started again.
        """

    @abstractmethod
    def down(self) -> None:
        """Stop everything and remove the state file; a no-op when nothing runs."""

    @abstractmethod
    def status(self) -> dict[str, str]:
        """Service -> state ("running", "stopped", "exited", ...); "running" means up.

        "orphaned" (native driver): the service's process runs, but the supervisor that
        started it is gone; `down` stops it."""

    def check_service(self, service: str) -> str:
        """Return `service` when this driver runs it; raise `ValueError` otherwise."""
        if service not in self.services:
            raise ValueError(f"unknown service {service!r}; expected one of {', '.join(self.services)}")
        return service

    def endpoints(self) -> dict[str, str]:
        """Service -> URL or DSN, from the state file."""
        return dict(read_state(self.state_file)["endpoints"])

    @abstractmethod
    def logs(self, service: str, *, lines: int = 50) -> str:
        """The last `lines` lines of a service's log."""

    @abstractmethod
    def stop(self, service: str) -> None:
        """Stop one service; it stays down until `start`. Returns once it has exited."""

    @abstractmethod
    def start(self, service: str) -> None:
        """Start one stopped service again; return once it is ready, raise `StartupError`
        (with the tail of its log) when it does not come up."""

    def restart(self, service: str) -> None:
        """Stop `service`, then start it: ready on return, `StartupError` if it does not come up."""
        self.stop(service)
        self.start(service)


def run_command(
    argv: Sequence[str],
    *,
    timeout_s: float,
    hint: str,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `argv` (never a shell), as `user` and with `env` if given; return its stdout.

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
            env=None if env is None else dict(env),
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
