"""Native driver: the sandbox services as local processes under supervisord.

Everything lives in one working directory (`sandbox_dir()`), wiped at `up`:

    supervisord.conf  supervisor.sock  supervisord.pid  supervisord.log
    state.json  chaos.json              what `up` publishes (mode 0600: they hold tokens)
    logs/<service>.log                  one log per service (stdout + stderr)
    processes.json  ports.json          each service's pid and start time; the ports `up` picked
    postgres/data  postgres/.s.PGSQL.*  cluster and its unix socket (owned by `postgres` as root)
    prometheus/prometheus.yml  prometheus/data
    alertmanager/alertmanager.yml  alertmanager/data
    traffic.heartbeat

The first `up` keeps a copy of the empty cluster initdb made in ~/.cache/drillbook
($XDG_CACHE_HOME); later ones copy it instead of running initdb again.

Services listen on free loopback ports. supervisord never restarts a service
(`autorestart=false`), so a service stopped or crashed in a drill stays down
until someone starts it. When run as root, PostgreSQL runs as the `postgres`
OS user, because it refuses to run as root.

Start-up has three stages so that nothing pages while the sandbox comes up: every
server starts at once; the api and the postgres exporter once the schema is applied
(before that the exporter would report the database down); the traffic generator once
the api's /health answers 200.

What runs is known even when supervisord is not. After every start and stop (and at
every `status` while supervisord answers), `processes.json` records each service's
pid with its start time as the kernel tells it (/proc/PID/stat; `ps -o lstart` where
there is no /proc), so that a recycled pid is never taken for a service; PostgreSQL's
own `postmaster.pid`, checked against the process's command line, is a second witness.
supervisord makes every service the leader of its own process group, so a service's
group holds every process it started. When supervisord has died under its services:

- `status` reports each service that still runs as "orphaned" (not "stopped");
- `down` stops them itself: the service's stop signal to its whole group (SIGINT
  for PostgreSQL, SIGTERM for the rest), a wait of up to SHUTDOWN_TIMEOUT_S, then
  SIGKILL and a last wait of KILL_TIMEOUT_S; whatever survives makes it fail
  (exit 1) naming the processes;
- `up` does the same before it wipes the directory, and refuses (exit 1) if it
  cannot, so that it never deletes a directory under a live PostgreSQL;
- `start` and `stop` refuse with a hint to run `down`, then `up`.

`start SERVICE` returns once the service answers its readiness probe (the same one
`up` waits for) and supervisord calls it RUNNING; a service that exits as soon as it
starts (its port taken, a bad configuration) fails `start` with the tail of its log.
`stop SERVICE` returns once every process of the service's group has exited. The
platform commands that runbooks use (`restart`, `stop`, `start` in the state file) are
`python -m sandbox --dir DIR --driver native VERB SERVICE`, so a restart that does
not come back up is reported as failed, not as applied.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from string import Template
from typing import Any

import psycopg
from psycopg import sql
from supervisor.xmlrpc import Faults, SupervisorTransport  # type: ignore[import-untyped]  # no stubs

from sandbox._driver import (
    APP_ROLE,
    CHAOS_FILE,
    REPO_ROOT,
    Driver,
    loopback_endpoints,
    new_token,
    platform_commands,
    record_started,
    run_command,
    sandbox_dir,
    warm_cache,
)
from sandbox._errors import NotRunning, ReadinessTimeout, SandboxError, StartupError
from sandbox._ports import pick_port, pick_ports
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

PACKAGE_DIR = Path(__file__).resolve().parent
MARKER = ".drillbook-sandbox"  # `up` only wipes directories that carry it
PG_SUPERUSER = "postgres"
CRASHED = frozenset({"BACKOFF", "EXITED", "FATAL"})  # supervisor states of a failed start
LIVE = frozenset({"STARTING", "RUNNING", "STOPPING"})  # supervisor states with a process
SHUTDOWN_TIMEOUT_S = 30.0  # stop signal -> SIGKILL, for a service's process group
KILL_TIMEOUT_S = 5.0  # SIGKILL -> giving up on a process that outlives it
START_TIMEOUT_S = 60.0  # `start SERVICE`: until the service answers its readiness probe
COMMAND_TIMEOUT_S = 30.0
# Each service's stop signal, as supervisord.conf has it (`stopsignal`); SIGTERM otherwise.
# PostgreSQL: a fast shutdown, as SIGTERM would wait for the api's pooled connections to close.
STOP_SIGNALS: dict[str, signal.Signals] = {"postgres": signal.SIGINT}
PROCFS = Path("/proc/self/stat").exists()
# PostgreSQL's own default. The pool-exhaustion drill fills it but for the API pool's room
# and two slots; with fewer, those few would be a tenth of the limit and the leak would
# never read as critical (90 %).
PG_MAX_CONNECTIONS = 100
PYTHON_SERVICES = frozenset({"api", "upstream", "traffic", "chaos", "receiver"})


@dataclass(frozen=True)
class Layout:
    """Paths inside the working directory."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"

    @property
    def alertmanager(self) -> Path:
        return self.root / "alertmanager"

    @property
    def heartbeat(self) -> Path:
        return self.root / "traffic.heartbeat"

    @property
    def processes(self) -> Path:
        return self.root / "processes.json"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"

    @property
    def postmaster_pid(self) -> Path:
        return self.postgres / "data" / "postmaster.pid"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


STARTED_AFTER_SCHEMA = ("api", "postgres-exporter")
STARTED_AFTER_API = ("traffic",)


@dataclass(frozen=True)
class Binaries:
    supervisord: Path
    supervisorctl: Path
    initdb: Path
    postgres: Path
    redis_server: Path
    prometheus: Path
    alertmanager: Path
    blackbox_exporter: Path
    postgres_exporter: Path
    redis_exporter: Path

    @classmethod
    def find(cls) -> Binaries:
        """Locate every executable, or fail listing where each missing one was looked for."""
        venv_bin = Path(sys.prefix) / "bin"
        pg_dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
        wanted = {
            "supervisord": [str(venv_bin / "supervisord")],
            "supervisorctl": [str(venv_bin / "supervisorctl")],
            "initdb": ["initdb", *(f"{d}/initdb" for d in pg_dirs)],
            "postgres": ["postgres", *(f"{d}/postgres" for d in pg_dirs)],
            "redis_server": ["redis-server"],
            "prometheus": ["prometheus"],
            "alertmanager": ["prometheus-alertmanager", "alertmanager"],
            "blackbox_exporter": ["prometheus-blackbox-exporter", "blackbox_exporter"],
            "postgres_exporter": ["prometheus-postgres-exporter", "postgres_exporter"],
            "redis_exporter": ["prometheus-redis-exporter", "redis_exporter"],
        }
        found: dict[str, Path] = {}
        missing: list[str] = []
        for name, candidates in wanted.items():
            hit = next(filter(None, (shutil.which(c) for c in candidates)), None)
            if hit is None:
                missing.append(f"{name} (tried {', '.join(candidates)})")
            else:
                found[name] = Path(hit)
        if missing:
            raise SandboxError(
                "the native sandbox needs executables that were not found: "
                + "; ".join(missing)
                + "\nHint: install the OS packages (scripts/install-os-packages test: postgresql"
                " redis-server prometheus prometheus-alertmanager prometheus-blackbox-exporter"
                " prometheus-postgres-exporter prometheus-redis-exporter)"
                " and the project in this interpreter's venv (pip install -e .[dev]),"
                " or use --driver compose."
            )
        return cls(**found)


def _version_key(pg_bin_dir: str) -> tuple[int, ...]:
    version = Path(pg_bin_dir).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _pid_alive(pid: int) -> bool:
    """Whether `pid` exists and has not exited (PID 1 in a container may never reap it)."""
    if not PROCFS:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _pid_is_supervising(pid: int, conf: Path) -> bool:
    """Whether `pid` is a live supervisord started with `conf` (not a recycled pid)."""
    if not _pid_alive(pid):
        return False
    if not PROCFS:
        return True  # trust the pid file
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return os.fsencode(conf) in cmdline.split(b"\0")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (index 0 is field 3, the state)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone (ENOENT, ESRCH) between the listing and the read
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> str | None:
    """When `pid` started, as the kernel tells it; None when no such live process exists.

    With the pid it names one process: a pid the kernel hands out again has another
    start time."""
    if PROCFS:
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return None
        return fields[19]  # field 22, starttime: clock ticks after boot
    try:
        done = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _members(pgids: set[int]) -> dict[int, list[int]]:
    """Process group -> its live processes (zombies excluded), for each of `pgids` that has any."""
    found: dict[int, list[int]] = {}
    if not PROCFS:
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass  # it exists
            found[pgid] = [pgid]
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) in pgids:
            found.setdefault(int(fields[2]), []).append(int(entry.name))
    return found


def terminate_groups(
    leaders: Mapping[str, int],
    *,
    timeout_s: float = SHUTDOWN_TIMEOUT_S,
    signals: Mapping[str, int] | None = None,
) -> dict[str, list[int]]:
    """Stop each named process and everything in its process group; return what survived.

    `leaders` maps a name to the pid of a live process, normally a group leader (its group
    id is its pid; supervisord makes each service one). Each group gets its stop signal
    (`signals[name]`, else SIGTERM), then up to `timeout_s` to exit; whatever is left gets
    SIGKILL and KILL_TIMEOUT_S more. Returns name -> pids still alive after that: empty
    when everything is gone. A process that leads no group is signalled alone.
    """
    signals = signals or {}
    groups: dict[str, int] = {}
    for name, pid in leaders.items():
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            continue  # already gone
        try:
            if pgid == pid:
                os.killpg(pgid, signals.get(name, signal.SIGTERM))
            else:
                os.kill(pid, signals.get(name, signal.SIGTERM))
        except ProcessLookupError:
            continue
        except PermissionError:
            pass  # another user's: it will be reported as a survivor
        groups[name] = pid if pgid == pid else -pid  # negative: that one process, not a group

    def survivors() -> dict[str, list[int]]:
        members = _members({pgid for pgid in groups.values() if pgid > 0})
        left = {name: members[pgid] for name, pgid in groups.items() if pgid > 0 and pgid in members}
        left |= {name: [-pid] for name, pid in groups.items() if pid < 0 and _pid_alive(-pid)}
        return left

    def gone() -> None:
        left = survivors()
        if left:
            raise NotReady("still running: " + ", ".join(f"{name} (pids {p})" for name, p in left.items()))

    try:
        wait_for(
            "stopped processes",
            gone,
            deadline=time.monotonic() + timeout_s,
            tried="the stop signal to each process group",
            hint="SIGKILL follows.",
        )
        return {}
    except ReadinessTimeout:
        left = survivors()
    log.warning("still running %.0f s after the stop signal: %s; sending SIGKILL", timeout_s, left)
    for name in left:
        pgid = groups[name]
        try:
            if pgid > 0:
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(-pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    try:
        wait_for(
            "killed processes",
            gone,
            deadline=time.monotonic() + KILL_TIMEOUT_S,
            tried="SIGKILL to each process group",
            hint="a process in uninterruptible sleep, or owned by another user, outlives SIGKILL.",
        )
    except ReadinessTimeout:
        return survivors()
    return {}


def store_programs(
    binaries: Binaries,
    layout: Layout,
    ports: Mapping[str, int],
    loopback: Mapping[str, str],
    redis_url: str,
    prometheus_yml: Path,
) -> dict[str, list[str]]:
    """The argv of what every stack runs alike: PostgreSQL, Redis, their stock exporters and
    Prometheus, each on its loopback port under `layout`."""
    return {
        "postgres": [
            str(binaries.postgres),
            "-D", str(layout.postgres / "data"),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={ports['postgres']}",
            "-k", str(layout.postgres),
            "-c", "fsync=off",
            "-c", f"max_connections={PG_MAX_CONNECTIONS}",
        ],
        "redis": [
            str(binaries.redis_server),
            "--bind", "127.0.0.1",
            "--port", str(ports["redis"]),
            "--save", "",
            "--appendonly", "no",
        ],
        "postgres-exporter": [
            str(binaries.postgres_exporter),
            f"--web.listen-address={loopback['postgres-exporter']}",
        ],
        "redis-exporter": [
            str(binaries.redis_exporter),
            "-redis.addr", redis_url,
            "-web.listen-address", loopback["redis-exporter"],
        ],
        "prometheus": [
            str(binaries.prometheus),
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={layout.prometheus / 'data'}",
            f"--web.listen-address={loopback['prometheus']}",
        ],
    }  # fmt: skip


def _ini(value: str) -> str:
    """Escape a value for supervisord.conf, which expands `%(name)s`."""
    return value.replace("%", "%%")


class NativeDriver(Driver):
    """The sandbox as local processes under a private supervisord."""

    kind = "native"

    def __init__(self, *, root: Path | None = None, state_file: Path | None = None) -> None:
        """The sandbox in `root` (default `sandbox_dir()`), publishing `state_file` (default
        `state_path()`); another stack (sandbox/stock) passes its own of both."""
        super().__init__(state_file=state_file)
        self.layout = Layout(root or sandbox_dir())
        self._deferred = frozenset(("postgres", *STARTED_AFTER_SCHEMA, *STARTED_AFTER_API))
        self.timings: dict[str, float] = {}  # seconds from the start of the last `up` to each phase
        self.postgres_user = PG_SUPERUSER if os.geteuid() == 0 else None

    # -- the Driver interface ------------------------------------------------------------

    def up(self, *, timeout_s: float = 90.0, wait_for_rates: bool = True) -> None:
        started_up = time.monotonic()
        deadline = started_up + timeout_s
        self.timings = {}
        binaries = Binaries.find()
        if self._supervisord_pid() is not None:
            if self.state_file.exists() and set(self.status().values()) == {"running"}:
                log.info("the sandbox in %s is already up", self.layout.root)
                return  # idempotent: same processes, ports and tokens
            log.info("stopping the half-running sandbox in %s", self.layout.root)
            self.down()
        elif orphans := self._unsupervised():
            # Never wipe the directory under a live PostgreSQL: stop what the dead supervisord left.
            log.warning(
                "supervisord of the sandbox in %s is gone, but %s still run (orphaned); stopping them first",
                self.layout.root,
                ", ".join(f"{service} (pid {pid})" for service, pid in orphans.items()),
            )
            self.down()
        self._recreate_root()
        ports = pick_ports()
        self.layout.ports.write_text(json.dumps(ports, indent=2))
        probes = self._probes(ports)
        endpoints = loopback_endpoints(ports)
        # Where `drillbook receive --sandbox` listens when someone runs it: Alertmanager posts there.
        drillbook_receiver = f"http://127.0.0.1:{pick_port()}"
        admin_token, chaos_token, receiver_token = new_token(), new_token(), new_token()
        failing: str | None = None  # the service to blame; None: supervisord or set-up
        try:
            # Prometheus first: it scrapes nothing for its first ~5 s (its scrape manager
            # applies targets on a 5 s tick), so that clock starts while PostgreSQL is set up.
            self._write_configs(
                binaries, ports, endpoints, admin_token=admin_token, chaos_token=chaos_token,
                receiver_token=receiver_token, drillbook_receiver=drillbook_receiver,
            )  # fmt: skip
            self._start_supervisord(binaries, deadline)
            self._initdb(binaries, timeout_s=deadline - time.monotonic())
            self._start_now(("postgres",))
            failing = "postgres"
            self._await("postgres", *probes["postgres"], deadline)
            started = time.monotonic()
            _bootstrap_database(_admin_dsn(ports), endpoints["postgres"])
            log.info("schema applied in %.1fs", time.monotonic() - started)
            self._start_now(STARTED_AFTER_SCHEMA)
            for service in ("redis", "upstream", "receiver", "chaos", "api"):
                failing = service
                self._await(service, *probes[service], deadline)
            warm_cache(endpoints["api"], admin_token, timeout_s=max(1.0, deadline - time.monotonic()))
            self._start_now(STARTED_AFTER_API)
            for service in ("alertmanager", "blackbox", "postgres-exporter", "redis-exporter", "prometheus"):
                failing = service
                self._await(service, *probes[service], deadline)
            self.timings["healthy"] = time.monotonic() - started_up
            failing = "traffic"
            self._await("traffic", *probes["traffic"], deadline)
            failing = "prometheus"
            query = 'up{job="api"} == 1'
            self._await(
                "prometheus",
                partial(prometheus_has_sample, endpoints["prometheus"], query),
                f"query {query} at {endpoints['prometheus']}",
                deadline,
                what="prometheus scraping api",
            )
            self.timings["scraped"] = time.monotonic() - started_up
            # supervisord calls a program RUNNING once it has lived `startsecs`; on a busy
            # machine the last one started (traffic) may still be STARTING, and `status`
            # straight after `up` would say so.
            failing = None
            wait_for(
                "every service RUNNING under supervisord",
                self._every_service_running,
                deadline=deadline,
                tried="supervisorctl status",
                hint=f"see {self.layout.root / 'supervisord.log'}.",
            )
            if wait_for_rates:
                log.info("waiting for a rate window of api metrics, so that runbooks can judge rates")
                wait_for_rate_window(
                    endpoints["prometheus"],
                    deadline=deadline,
                    hint=f"read `python -m sandbox logs prometheus` or {self.layout.log('prometheus')}",
                )
                self.timings["observable"] = time.monotonic() - started_up
        except SandboxError as exc:
            tail = self._log_tail(failing)
            self.down()
            raise StartupError(
                f"sandbox start-up failed ({failing or 'set-up'}): {exc}",
                service=failing,
                log_tail=tail,
            ) from exc
        except BaseException:
            self.down()
            raise
        self._record_processes(self._process_infos())
        record_started(
            self.state_file,
            driver="native",
            endpoints=endpoints,
            ports=ports,
            platform=platform_commands(self._cli()),
            admin_token=admin_token,
            chaos_token=chaos_token,
            receiver_token=receiver_token,
            drillbook_receiver=drillbook_receiver,
        )

    def down(self) -> None:
        pid = self._supervisord_pid()
        if pid is not None:
            started = time.monotonic()
            try:  # every service at once; on SIGTERM alone supervisord stops them one by one
                self._rpc().supervisor.stopAllProcesses(False)
            except (OSError, xmlrpc.client.Error) as exc:
                log.warning("stopAllProcesses failed (%s); supervisord stops them on SIGTERM", exc)
            os.kill(pid, signal.SIGTERM)  # supervisord waits for its services, then exits

            def exited() -> None:  # the pid, not the pid file: supervisord removes it first
                if _pid_alive(pid):
                    raise NotReady(f"supervisord (pid {pid}) still running")

            wait_for(
                "supervisord shutdown",
                exited,
                deadline=started + SHUTDOWN_TIMEOUT_S,
                tried=f"SIGTERM to supervisord pid {pid}",
                hint=f"see {self.layout.root / 'supervisord.log'}; kill {pid} by hand if it hangs.",
            )
            log.info("sandbox stopped in %.1fs", time.monotonic() - started)
        if orphans := self._unsupervised():  # supervisord died, or left some behind
            log.warning(
                "stopping %s: still running without supervisord (orphaned)",
                ", ".join(f"{service} (pid {pid})" for service, pid in orphans.items()),
            )
            survivors = terminate_groups(orphans, signals=STOP_SIGNALS)
            if survivors:
                pids = " ".join(str(pid) for group in survivors.values() for pid in sorted(group))
                named = ", ".join(f"{service} (pids {group})" for service, group in survivors.items())
                raise SandboxError(
                    f"could not stop every process of the sandbox in {self.layout.root}: {named}"
                    f" outlived SIGTERM and SIGKILL\nHint: `kill -9 {pids}` as their owner (or root),"
                    " then `python -m sandbox down` again."
                )
        self.layout.processes.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        (self.state_file.parent / CHAOS_FILE).unlink(missing_ok=True)

    def _every_service_running(self) -> None:
        states = self.status()
        crashed = {service: state for service, state in states.items() if state.upper() in CRASHED}
        if crashed:
            raise SandboxError(f"not running under supervisord: {crashed}")
        waiting = {service: state for service, state in states.items() if state != "running"}
        if waiting:
            raise NotReady(f"still {waiting}")

    def status(self) -> dict[str, str]:
        """Each service's state under supervisord; without supervisord, "orphaned" for each
        service whose process still runs (see the module docstring) and "stopped" for the rest."""
        if self._supervisord_pid() is None:
            orphans = self._unsupervised()
            return {service: "orphaned" if service in orphans else "stopped" for service in self.services}
        infos = self._process_infos()
        self._record_processes(infos)
        states = {info["name"]: info["statename"].lower() for info in infos}
        return {service: states.get(service, "absent") for service in self.services}

    def logs(self, service: str, *, lines: int = 50) -> str:
        path = self.layout.log(self.check_service(service))
        if not path.exists():
            raise NotRunning(
                f"no log for {service} at {path}\nHint: start the sandbox with "
                "`python -m sandbox up` (logs are kept after `down`, until the next `up`)."
            )
        return self._log_tail(service, lines)

    def stop(self, service: str) -> None:
        """Stop `service` and return once every process of its group has exited (a no-op
        when it is not running)."""
        self._need_supervisord("stop", self.check_service(service))
        pid = self._supervised_pid(service)
        try:  # supervisord signals the group, waits `stopwaitsecs`, then SIGKILLs the group
            self._rpc().supervisor.stopProcess(service, True)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode != Faults.NOT_RUNNING:
                raise SandboxError(
                    f"supervisord could not stop {service}: {exc.faultString}\n"
                    f"Hint: see {self.layout.root / 'supervisord.log'}."
                ) from exc
        except OSError as exc:
            raise SandboxError(
                f"supervisord at {self.layout.socket} did not answer: {exc}\n"
                f"Hint: `python -m sandbox status` says what still runs."
            ) from exc
        if pid:

            def group_gone() -> None:
                if left := _members({pid}).get(pid):
                    raise NotReady(f"pids {left} of {service}'s process group still run")

            wait_for(
                f"{service} to stop",
                group_gone,
                deadline=time.monotonic() + KILL_TIMEOUT_S,
                tried=f"stopProcess({service!r}) over {self.layout.socket}",
                hint=f"kill the process group by hand: `kill -9 -- -{pid}`.",
            )
        self._refresh_records()

    def start(self, service: str) -> None:
        """Start `service` and return once it answers its readiness probe and supervisord
        calls it RUNNING; `StartupError` with the tail of its log when it does not stay up."""
        self._need_supervisord("start", self.check_service(service))
        deadline = time.monotonic() + START_TIMEOUT_S
        probe, tried = self._probes(self._ports(), whole=False)[service]
        try:
            self._rpc().supervisor.startProcess(service, False)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode != Faults.ALREADY_STARTED:  # already started: check it all the same
                raise StartupError(
                    f"supervisord could not start {service}: {exc.faultString}\n"
                    "Hint: its log below says why.",
                    service=service,
                    log_tail=self._log_tail(service),
                ) from exc
        except OSError as exc:
            raise SandboxError(
                f"supervisord at {self.layout.socket} did not answer: {exc}\n"
                f"Hint: see {self.layout.root / 'supervisord.log'}."
            ) from exc
        try:
            self._await(
                service,
                probe,
                tried,
                deadline,
                supervised=True,
                hint=f"the last lines of its log are below; `python -m sandbox logs {service}` shows more.",
            )
        except SandboxError as exc:
            hint = (
                ""  # a timeout carries its own hint
                if isinstance(exc, ReadinessTimeout)
                else "\nHint: its log below says why (a port that another process holds, a dependency"
                f" that is down); `python -m sandbox logs {service}` shows more."
            )
            raise StartupError(
                f"{service} did not start: {exc}{hint}",
                service=service,
                log_tail=self._log_tail(service),
            ) from exc
        finally:
            self._refresh_records()

    # -- helpers ---------------------------------------------------------------------------

    def _cli(self) -> list[str]:
        """The command line that drives this sandbox: the runbooks' platform commands."""
        return [sys.executable, "-m", "sandbox", "--dir", str(self.layout.root), "--driver", "native"]

    def _need_supervisord(self, verb: str, service: str) -> None:
        if self._supervisord_pid() is not None:
            return
        if orphans := self._unsupervised():
            raise SandboxError(
                f"cannot {verb} {service}: the supervisord of {self.layout.root} is gone, and "
                f"{', '.join(orphans)} still run without it (orphaned)\n"
                "Hint: `python -m sandbox down` stops them, then `python -m sandbox up` starts afresh."
            )
        raise NotRunning(f"no supervisord runs for {self.layout.root}\nHint: `python -m sandbox up` first.")

    def _supervised_pid(self, service: str) -> int:
        """The pid supervisord holds for `service`; 0 when it runs none."""
        return next((int(i["pid"]) for i in self._process_infos() if i["name"] == service), 0)

    def _record_processes(self, infos: list[dict[str, Any]]) -> None:
        """Write processes.json: service -> pid and start time, for each live service process."""
        records: dict[str, dict[str, Any]] = {}
        for info in infos:
            pid = int(info.get("pid") or 0)
            if info["name"] in self.services and info["statename"] in LIVE and pid > 0:
                started = process_start_time(pid)
                if started is not None:
                    records[info["name"]] = {"pid": pid, "started": started}
        partial_file = self.layout.processes.with_name(f"{self.layout.processes.name}.{os.getpid()}.tmp")
        try:
            partial_file.write_text(json.dumps(records, indent=2))
            partial_file.replace(self.layout.processes)
        except FileNotFoundError:
            pass  # the directory went away (a concurrent `up` wipes it): nothing to record

    def _refresh_records(self) -> None:
        """Record what supervisord runs now; if it does not answer, leave the last record."""
        try:
            self._record_processes(self._process_infos())
        except SandboxError as exc:
            log.warning("could not record the service processes: %s", exc)

    def _unsupervised(self) -> dict[str, int]:
        """Service -> pid of each recorded service process that still runs (same pid, same
        start time), and PostgreSQL by its own pid file; in start-up order."""
        try:
            records = json.loads(self.layout.processes.read_text())
            recorded = {str(name): (int(r["pid"]), str(r["started"])) for name, r in records.items()}
        except FileNotFoundError:
            recorded = {}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SandboxError(
                f"{self.layout.processes} is unreadable ({exc}); it cannot say which processes run\n"
                "Hint: `python -m sandbox status` after removing it reports PostgreSQL alone; stop the rest"
                " by hand."
            ) from exc
        live = {name: pid for name, (pid, started) in recorded.items() if process_start_time(pid) == started}
        if "postgres" not in live and (postmaster := self._postmaster()) is not None:
            live["postgres"] = postmaster
        return {service: live[service] for service in self.services if service in live}

    def _postmaster(self) -> int | None:
        """The pid in PostgreSQL's postmaster.pid, if that process runs on this directory's cluster."""
        data = self.layout.postmaster_pid.parent
        try:
            lines = self.layout.postmaster_pid.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid <= 0 or not _pid_alive(pid):
            return None
        if PROCFS:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                return None
            if os.fsencode(str(data)) not in cmdline:
                return None  # a recycled pid
        return pid

    def _ports(self) -> dict[str, int]:
        try:
            ports: dict[str, int] = json.loads(self.layout.ports.read_text())
        except (FileNotFoundError, ValueError) as exc:
            raise SandboxError(
                f"no record of the sandbox's ports at {self.layout.ports} ({exc})\n"
                "Hint: a sandbox started by an older version: `python -m sandbox down`, then `up`."
            ) from exc
        return ports

    def _probes(
        self, ports: Mapping[str, int], *, whole: bool = True
    ) -> dict[str, tuple[Callable[[], None], str]]:
        """Service -> (readiness probe, what it tries): what `up` and `start` wait for.

        With `whole` (`up`), the services' own health checks must answer 200, which for the
        api means its dependencies are healthy too. Without (`start` of one service), any
        answer of theirs will do: the process serves, and /health says how it fares."""
        endpoints = loopback_endpoints(ports)
        admin_dsn = _admin_dsn(ports)
        own = {
            "upstream": f"{endpoints['upstream']}/health",
            "receiver": f"{endpoints['receiver']}/health",
            "chaos": f"http://127.0.0.1:{ports['chaos']}/health",
            "api": f"{endpoints['api']}/health",
        }
        urls = {
            "alertmanager": f"{endpoints['alertmanager']}/-/ready",
            "blackbox": f"{endpoints['blackbox']}/-/healthy",
            "postgres-exporter": f"http://127.0.0.1:{ports['postgres-exporter']}/metrics",
            "redis-exporter": f"http://127.0.0.1:{ports['redis-exporter']}/metrics",
            "prometheus": f"{endpoints['prometheus']}/-/ready",
        }
        return {
            "postgres": (partial(postgres_accepts, admin_dsn), f"psycopg.connect({admin_dsn!r})"),
            "redis": (partial(redis_pings, endpoints["redis"]), f"PING {endpoints['redis']}"),
            **{service: (partial(http_ok, url), f"GET {url} == 200") for service, url in urls.items()},
            **{
                service: (partial(http_ok, url), f"GET {url} == 200")
                if whole
                else (partial(http_answers, url), f"GET {url} (any HTTP answer)")
                for service, url in own.items()
            },
            "traffic": (
                partial(_beats_after, self.layout.heartbeat, time.time()),
                f"a fresh touch of {self.layout.heartbeat}",
            ),
        }

    def _start_now(self, services: tuple[str, ...]) -> None:
        """Ask supervisord to start `services` without waiting; `_await` checks them later."""
        rpc = self._rpc()
        for service in services:
            try:
                rpc.supervisor.startProcess(service, False)
            except (OSError, xmlrpc.client.Error) as exc:
                raise SandboxError(f"supervisord could not start {service}: {exc}") from exc

    def _supervisord_pid(self) -> int | None:
        try:
            pid = int(self.layout.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_is_supervising(pid, self.layout.conf) else None

    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.layout.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def _process_infos(self) -> list[dict[str, Any]]:
        try:
            infos: list[dict[str, Any]] = self._rpc().supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error) as exc:
            raise SandboxError(
                f"supervisord at {self.layout.socket} did not answer: {exc}\n"
                f"Hint: see {self.layout.root / 'supervisord.log'}."
            ) from exc
        return infos

    def _log_tail(self, service: str | None, lines: int = 30) -> str:
        path = self.layout.log(service) if service else self.layout.root / "supervisord.log"
        try:
            with path.open(errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except FileNotFoundError:
            return f"(no log at {path})"

    def _recreate_root(self) -> None:
        root = self.layout.root
        if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
            raise SandboxError(
                f"refusing to wipe {root}: it is not empty and not a sandbox directory"
                f" (no {MARKER} file)\nHint: point DRILLBOOK_SANDBOX_DIR at an empty or new"
                " directory."
            )
        shutil.rmtree(root, ignore_errors=True)
        for path in (
            root,
            self.layout.logs,
            self.layout.postgres,
            self.layout.prometheus,
            self.layout.alertmanager,
        ):
            path.mkdir(parents=True)
        (root / MARKER).touch()
        if self.postgres_user is not None:
            root.chmod(0o755)  # the postgres OS user must reach its directory
            shutil.chown(self.layout.postgres, self.postgres_user, self.postgres_user)

    def _initdb(self, binaries: Binaries, *, timeout_s: float) -> None:
        if self.postgres_user is not None:
            try:
                pwd.getpwnam(self.postgres_user)
            except KeyError:
                raise SandboxError(
                    f"running as root, but there is no {self.postgres_user!r} OS user to run"
                    " PostgreSQL as\nHint: install the postgresql OS package or run as a"
                    " non-root user."
                ) from None
        started = time.monotonic()
        data = self.layout.postgres / "data"
        argv = [
            str(binaries.initdb),
            "--pgdata",
            str(data),
            "--username",
            PG_SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        version = run_command(
            [str(binaries.initdb), "--version"], timeout_s=timeout_s, hint="initdb is broken"
        )
        key = hashlib.sha256("\0".join([version, *argv[3:]]).encode()).hexdigest()[:12]
        template = _cache_dir() / f"pgdata-{key}"
        if template.is_dir():  # a copy of an empty cluster made by this same initdb
            run_command(
                ["cp", "-a", str(template), str(data)], timeout_s=timeout_s, hint=f"remove {template}"
            )
            log.info("postgres cluster copied from %s in %.1fs", template, time.monotonic() - started)
            return
        run_command(
            argv,
            timeout_s=timeout_s,
            hint="the output above is initdb's; as root, the postgres OS user must be able to"
            f" reach {self.layout.postgres}.",
            user=self.postgres_user,
        )
        _save_template(data, template, timeout_s=timeout_s)
        log.info("postgres cluster initialised in %.1fs", time.monotonic() - started)

    def _write_configs(
        self,
        binaries: Binaries,
        ports: dict[str, int],
        endpoints: dict[str, str],
        *,
        admin_token: str,
        chaos_token: str,
        receiver_token: str,
        drillbook_receiver: str,
    ) -> None:
        config = PACKAGE_DIR / "config"
        loopback = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        prometheus_yml = self.layout.prometheus / "prometheus.yml"
        prometheus_yml.write_text(
            Template((config / "prometheus.native.yml").read_text()).substitute(
                rules_dir=str(config / "rules"),
                api_target=loopback["api"],
                upstream_target=loopback["upstream"],
                postgres_exporter_target=loopback["postgres-exporter"],
                redis_exporter_target=loopback["redis-exporter"],
                blackbox_target=loopback["blackbox"],
                alertmanager_target=loopback["alertmanager"],
                prometheus_target=loopback["prometheus"],
            )
        )
        token_file = self.layout.alertmanager / "drillbook-token"
        token_file.touch(mode=0o600)
        token_file.write_text(receiver_token + "\n", encoding="utf-8")
        alertmanager_yml = self.layout.alertmanager / "alertmanager.yml"
        alertmanager_yml.write_text(
            Template((config / "alertmanager.yml").read_text()).substitute(
                receiver_url=endpoints["receiver"],
                drillbook_url=drillbook_receiver,
                drillbook_token_file=str(token_file),
            )
        )

        def uvicorn(module: str, service: str) -> list[str]:
            return [
                sys.executable, "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1",
                "--port", str(ports[service]), "--no-access-log",
            ]  # fmt: skip

        programs = {
            **store_programs(binaries, self.layout, ports, loopback, endpoints["redis"], prometheus_yml),
            "upstream": uvicorn("sandbox.service.upstream", "upstream"),
            "api": uvicorn("sandbox.service.app", "api"),
            "traffic": [sys.executable, "-m", "sandbox.service.traffic"],
            "chaos": uvicorn("sandbox.service.agent", "chaos"),
            "receiver": uvicorn("sandbox.service.receiver", "receiver"),
            "alertmanager": [
                str(binaries.alertmanager),
                f"--config.file={alertmanager_yml}",
                f"--storage.path={self.layout.alertmanager / 'data'}",
                f"--web.listen-address={loopback['alertmanager']}",
                "--cluster.listen-address=",  # no gossip port: a single instance
            ],
            "blackbox": [
                str(binaries.blackbox_exporter),
                f"--config.file={config / 'blackbox.yml'}",
                f"--web.listen-address={loopback['blackbox']}",
            ],
        }  # fmt: skip
        programs["postgres-exporter"].append(
            f"--extend.query-path={config / 'postgres-exporter-queries.yml'}"
        )
        python_env = {"PYTHONUNBUFFERED": "1", "CHAOS_TOKEN": chaos_token}
        environments: dict[str, dict[str, str]] = {
            "api": {
                **python_env,
                "DATABASE_URL": endpoints["postgres"],
                "REDIS_URL": endpoints["redis"],
                "UPSTREAM_URL": endpoints["upstream"],
                "ADMIN_TOKEN": admin_token,
            },
            "upstream": python_env,
            "receiver": python_env,
            "chaos": {**python_env, "DATABASE_URL": endpoints["postgres"], "API_URL": endpoints["api"]},
            "traffic": {
                "PYTHONUNBUFFERED": "1",
                "API_URL": endpoints["api"],
                "TRAFFIC_HEARTBEAT": str(self.layout.heartbeat),
            },
            "postgres-exporter": {
                "DATA_SOURCE_NAME": f"{endpoints['postgres']}?sslmode=disable",
                "PG_EXPORTER_EXTEND_QUERY_PATH": str(config / "postgres-exporter-queries.yml"),
            },
        }
        extra = {
            # fast shutdown: SIGTERM would wait for the api's pooled connections to close
            "postgres": [
                "stopsignal=INT",
                *([f"user={self.postgres_user}"] if self.postgres_user else []),
                "autostart=false",  # started once initdb is done
            ],
            **{
                name: [f"autostart={'false' if name in self._deferred else 'true'}"]
                for name in programs
                if name != "postgres"
            },
        }
        for name, env in environments.items():
            extra[name].append(
                "environment=" + ",".join(f'{key}="{_ini(value)}"' for key, value in env.items())
            )
            if name in PYTHON_SERVICES:
                extra[name].append(f"directory={_ini(str(REPO_ROOT))}")
        self._write_supervisord_conf(programs, extra)

    def _write_supervisord_conf(
        self, programs: Mapping[str, list[str]], extra: Mapping[str, list[str]]
    ) -> None:
        """supervisord.conf: one program per entry of `programs` (its argv), with the lines of
        `extra` for it; never restarted, stopped as a group, its output in logs/<name>.log."""
        root = self.layout.root
        lines = [
            "; generated by sandbox/_native.py at `up`; edits are lost at the next `up`",
            "[unix_http_server]",
            f"file={_ini(str(self.layout.socket))}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={_ini(str(root / 'supervisord.log'))}",
            f"pidfile={_ini(str(self.layout.pidfile))}",
            f"childlogdir={_ini(str(self.layout.logs))}",
            f"directory={_ini(str(root))}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{_ini(str(self.layout.socket))}",
        ]
        for name, argv in programs.items():
            lines += [
                "",
                f"[program:{name}]",
                f"command={_ini(shlex.join(argv))}",
                "autorestart=false",
                "startsecs=1",
                "startretries=0",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={_ini(str(self.layout.log(name)))}",
                *extra.get(name, []),
            ]
        self.layout.conf.write_text("\n".join(lines) + "\n")
        self.layout.conf.chmod(0o600)  # it carries the tokens

    def _start_supervisord(self, binaries: Binaries, deadline: float) -> None:
        started = time.monotonic()
        run_command(  # daemonizes: returns once the daemon has forked
            [str(binaries.supervisord), "-c", str(self.layout.conf)],
            timeout_s=COMMAND_TIMEOUT_S,
            hint=f"supervisord rejected {self.layout.conf}; the output above says why.",
        )

        def answers() -> None:
            try:
                state = self._rpc().supervisor.getState()["statename"]
            except (OSError, xmlrpc.client.Error) as exc:
                raise NotReady(f"{type(exc).__name__}: {exc}") from exc
            if state != "RUNNING":
                raise NotReady(f"supervisord is {state}")

        wait_for(
            "supervisord",
            answers,
            deadline=deadline,
            tried=f"supervisor.getState() over {self.layout.socket}",
            hint=f"see {self.layout.root / 'supervisord.log'}.",
        )
        log.info("supervisord ready in %.1fs", time.monotonic() - started)

    def _await(
        self,
        service: str,
        probe: Callable[[], None],
        tried: str,
        deadline: float,
        *,
        what: str | None = None,
        supervised: bool = False,
        hint: str | None = None,
    ) -> None:
        """Poll `probe` to `deadline`, failing at once if supervisord saw `service` die.

        With `supervised`, also until supervisord calls it RUNNING (it has lived `startsecs`),
        and its state is read again after the probe: a process that exited while something
        else answered on its port is not ready."""

        def state() -> str | None:
            now = next((i["statename"] for i in self._process_infos() if i["name"] == service), None)
            if now in CRASHED:
                raise SandboxError(f"{service} is {now} under supervisord: it exited as soon as it started")
            return now

        def alive_and_ready() -> None:
            state()
            probe()
            if supervised and (now := state()) != "RUNNING":
                raise NotReady(f"{service} is {now} under supervisord")

        elapsed = wait_for(
            what or service,
            alive_and_ready,
            deadline=deadline,
            tried=tried,
            hint=hint
            or f"read `python -m sandbox logs {service}` or {self.layout.log(service)}; "
            "raise the timeout with `python -m sandbox up --timeout SECONDS`.",
        )
        log.info("%s ready in %.1fs", what or service, elapsed)


def _bootstrap_database(admin_dsn: str, app_dsn: str) -> None:
    """Create the application role, its database and the reserved role; then apply the
    schema as the application role."""
    schema = (PACKAGE_DIR / "sql" / "schema.sql").read_text()
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=2) as conn:
            role = sql.Identifier(APP_ROLE)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(role))  # all sessions' stats
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
            conn.execute((PACKAGE_DIR / "sql" / "reserved-role.sql").read_bytes())  # the responder's way in
        with psycopg.connect(app_dsn, connect_timeout=2) as conn:
            conn.execute(schema.encode())  # no parameters: several statements in one call
    except psycopg.Error as exc:
        raise SandboxError(
            f"could not bootstrap the database: {type(exc).__name__}: {exc}\n"
            "Hint: check sandbox/sql/schema.sql and the postgres log."
        ) from exc


def _cache_dir() -> Path:
    """Where the empty-cluster template lives: $XDG_CACHE_HOME/drillbook or ~/.cache/drillbook."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "drillbook"


def _save_template(data: Path, template: Path, *, timeout_s: float) -> None:
    """Keep a copy of a fresh cluster so that the next `up` skips initdb (best effort)."""
    partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        run_command(["cp", "-a", str(data), str(partial)], timeout_s=timeout_s, hint="")
        partial.rename(template)
    except (OSError, SandboxError) as exc:
        log.info("no initdb template kept (%s); the next up runs initdb again", exc)
        shutil.rmtree(partial, ignore_errors=True)


def _admin_dsn(ports: Mapping[str, int]) -> str:
    """The superuser's DSN (trust authentication on loopback): bootstrap and readiness."""
    return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{ports['postgres']}/postgres"


def _beats_after(path: Path, since: float) -> None:
    """`path` was touched at or after `since` (a `time.time()` value)."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        raise NotReady(f"{path} does not exist yet") from None
    if touched < since - 1.0:  # a second of slack for filesystem timestamp granularity
        raise NotReady(f"{path} not touched since the start")
