"""Native driver: the sandbox services as local processes under supervisord.

Everything lives in one working directory (`sandbox_dir()`), wiped at `up`:

    supervisord.conf  supervisor.sock  supervisord.pid  supervisord.log  state.json
    logs/<service>.log                  one log per service (stdout + stderr)
    postgres/data  postgres/.s.PGSQL.*  cluster and its unix socket (owned by `postgres` as root)
    prometheus/prometheus.yml  prometheus/data

Services listen on free loopback ports. supervisord never restarts a service
(`autorestart=false`), so a service stopped or crashed in a drill stays down
until someone starts it. When run as root, PostgreSQL runs as the `postgres`
OS user, because it refuses to run as root.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import sys
import time
import xmlrpc.client
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from string import Template
from typing import Any

import psycopg
from psycopg import sql
from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]  # no stubs

from sandbox._driver import (
    APP_ROLE,
    REPO_ROOT,
    SERVICES,
    Driver,
    check_service,
    loopback_endpoints,
    run_command,
    sandbox_dir,
    write_state,
)
from sandbox._errors import NotRunning, SandboxError, StartupError
from sandbox._readiness import (
    NotReady,
    http_ok,
    postgres_accepts,
    prometheus_has_sample,
    redis_pings,
    wait_for,
)

log = logging.getLogger("sandbox")

PACKAGE_DIR = Path(__file__).resolve().parent
MARKER = ".drillbook-sandbox"  # `up` only wipes directories that carry it
PG_SUPERUSER = "postgres"
CRASHED = frozenset({"BACKOFF", "EXITED", "FATAL"})  # supervisor states of a failed start
SHUTDOWN_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
PROCFS = Path("/proc/self/stat").exists()


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

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


@dataclass(frozen=True)
class Ports:
    api: int
    postgres: int
    redis: int
    prometheus: int

    @classmethod
    def pick(cls) -> Ports:
        """Free loopback ports, all held open together so that they differ."""
        with ExitStack() as stack:
            socks = [stack.enter_context(socket.socket()) for _ in SERVICES]
            for sock in socks:
                sock.bind(("127.0.0.1", 0))
            api, postgres, redis, prometheus = (sock.getsockname()[1] for sock in socks)
        return cls(api=api, postgres=postgres, redis=redis, prometheus=prometheus)

    def endpoints(self) -> dict[str, str]:
        return loopback_endpoints(
            api=self.api, postgres=self.postgres, redis=self.redis, prometheus=self.prometheus
        )


@dataclass(frozen=True)
class Binaries:
    supervisord: Path
    supervisorctl: Path
    initdb: Path
    postgres: Path
    redis_server: Path
    prometheus: Path

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
                + "\nHint: install the OS packages (apt install postgresql redis-server prometheus)"
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


def _ini(value: str) -> str:
    """Escape a value for supervisord.conf, which expands `%(name)s`."""
    return value.replace("%", "%%")


class NativeDriver(Driver):
    """The sandbox as local processes under a private supervisord."""

    kind = "native"

    def __init__(self) -> None:
        super().__init__()
        self.layout = Layout(sandbox_dir())
        self.postgres_user = PG_SUPERUSER if os.geteuid() == 0 else None

    # -- the Driver interface ------------------------------------------------------------

    def up(self, *, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        binaries = Binaries.find()
        if self._supervisord_pid() is not None:
            log.info("stopping the sandbox already running in %s", self.layout.root)
            self.down()
        self._recreate_root()
        ports = Ports.pick()
        endpoints = ports.endpoints()
        failing: str | None = None  # the service to blame; None: supervisord or set-up
        try:
            self._initdb(binaries, timeout_s=deadline - time.monotonic())
            self._write_configs(binaries, ports, endpoints)
            self._start_supervisord(binaries, deadline)
            admin_dsn = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{ports.postgres}/postgres"
            failing = "postgres"
            self._await(
                "postgres",
                partial(postgres_accepts, admin_dsn),
                deadline,
                tried=f"psycopg.connect({admin_dsn!r})",
            )
            started = time.monotonic()
            _bootstrap_database(admin_dsn, endpoints["postgres"])
            log.info("schema applied in %.1fs", time.monotonic() - started)
            failing = "redis"
            self._await(
                "redis",
                partial(redis_pings, endpoints["redis"]),
                deadline,
                tried=f"PING {endpoints['redis']}",
            )
            failing = "api"
            health = f"{endpoints['api']}/health"
            self._await("api", partial(http_ok, health), deadline, tried=f"GET {health} == 200")
            failing = "prometheus"
            ready = f"{endpoints['prometheus']}/-/ready"
            self._await("prometheus", partial(http_ok, ready), deadline, tried=f"GET {ready} == 200")
            query = 'up{job="api"} == 1'
            self._await(
                "prometheus",
                partial(prometheus_has_sample, endpoints["prometheus"], query),
                deadline,
                tried=f"query {query} at {endpoints['prometheus']}",
                what="prometheus scraping api",
            )
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
        write_state(self.state_file, driver="native", endpoints=endpoints, platform_prefix=self._ctl())

    def down(self) -> None:
        pid = self._supervisord_pid()
        if pid is not None:
            started = time.monotonic()
            os.kill(pid, signal.SIGTERM)  # supervisord stops every service, then exits

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
        self.state_file.unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        if self._supervisord_pid() is None:
            return dict.fromkeys(SERVICES, "stopped")
        states = {info["name"]: info["statename"].lower() for info in self._process_infos()}
        return {service: states.get(service, "absent") for service in SERVICES}

    def logs(self, service: str, *, lines: int = 50) -> str:
        path = self.layout.log(check_service(service))
        if not path.exists():
            raise NotRunning(
                f"no log for {service} at {path}\nHint: start the sandbox with "
                "`python -m sandbox up` (logs are kept after `down`, until the next `up`)."
            )
        return self._log_tail(service, lines)

    def stop(self, service: str) -> None:
        self._supervisorctl("stop", check_service(service))

    def start(self, service: str) -> None:
        self._supervisorctl("start", check_service(service))

    # -- helpers ---------------------------------------------------------------------------

    def _ctl(self) -> list[str]:
        ctl = Path(sys.prefix) / "bin" / "supervisorctl"
        return [str(ctl), "-c", str(self.layout.conf)]

    def _supervisorctl(self, verb: str, service: str) -> None:
        if self._supervisord_pid() is None:
            raise NotRunning(
                f"no supervisord runs for {self.layout.root}\nHint: `python -m sandbox up` first."
            )
        run_command(
            [*self._ctl(), verb, service],
            timeout_s=COMMAND_TIMEOUT_S,
            hint=f"read `python -m sandbox logs {service}` and {self.layout.root}/supervisord.log.",
        )

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
        for path in (root, self.layout.logs, self.layout.postgres, self.layout.prometheus):
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
        run_command(
            [
                str(binaries.initdb),
                "--pgdata",
                str(self.layout.postgres / "data"),
                "--username",
                PG_SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            timeout_s=timeout_s,
            hint="the output above is initdb's; as root, the postgres OS user must be able to"
            f" reach {self.layout.postgres}.",
            user=self.postgres_user,
        )
        log.info("postgres cluster initialised in %.1fs", time.monotonic() - started)

    def _write_configs(self, binaries: Binaries, ports: Ports, endpoints: dict[str, str]) -> None:
        prometheus_yml = self.layout.prometheus / "prometheus.yml"
        template = Template((PACKAGE_DIR / "config" / "prometheus.native.yml").read_text())
        prometheus_yml.write_text(
            template.substitute(
                api_target=f"127.0.0.1:{ports.api}",
                prometheus_target=f"127.0.0.1:{ports.prometheus}",
            )
        )
        programs = {
            "postgres": [
                str(binaries.postgres),
                "-D",
                str(self.layout.postgres / "data"),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={ports.postgres}",
                "-k",
                str(self.layout.postgres),
                "-c",
                "fsync=off",
            ],
            "redis": [
                str(binaries.redis_server),
                "--bind",
                "127.0.0.1",
                "--port",
                str(ports.redis),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "api": [
                sys.executable,
                "-m",
                "uvicorn",
                "sandbox.service.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.api),
                "--no-access-log",
            ],
            "prometheus": [
                str(binaries.prometheus),
                f"--config.file={prometheus_yml}",
                f"--storage.tsdb.path={self.layout.prometheus / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            ],
        }
        extra = {
            # fast shutdown: SIGTERM would wait for the api's pooled connections to close
            "postgres": [
                "stopsignal=INT",
                *([f"user={self.postgres_user}"] if self.postgres_user else []),
            ],
            "api": [
                f"directory={_ini(str(REPO_ROOT))}",
                "environment="
                + ",".join(
                    f'{key}="{_ini(value)}"'
                    for key, value in {
                        "DATABASE_URL": endpoints["postgres"],
                        "REDIS_URL": endpoints["redis"],
                        "PYTHONUNBUFFERED": "1",
                    }.items()
                ),
            ],
        }
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
                "autostart=true",
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
        deadline: float,
        *,
        tried: str,
        what: str | None = None,
    ) -> None:
        """Poll `probe` to `deadline`, failing at once if supervisord saw `service` die."""

        def alive_and_ready() -> None:
            state = next((i["statename"] for i in self._process_infos() if i["name"] == service), None)
            if state in CRASHED:
                raise SandboxError(f"{service} is {state} under supervisord")
            probe()

        elapsed = wait_for(
            what or service,
            alive_and_ready,
            deadline=deadline,
            tried=tried,
            hint=f"read `python -m sandbox logs {service}` or {self.layout.log(service)}; "
            "raise the timeout with `python -m sandbox up --timeout SECONDS`.",
        )
        log.info("%s ready in %.1fs", what or service, elapsed)


def _bootstrap_database(admin_dsn: str, app_dsn: str) -> None:
    """Create the application role and database, then apply the schema as that role."""
    schema = (PACKAGE_DIR / "sql" / "schema.sql").read_text()
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=2) as conn:
            role = sql.Identifier(APP_ROLE)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(role))  # all sessions' stats
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
        with psycopg.connect(app_dsn, connect_timeout=2) as conn:
            conn.execute(schema.encode())  # no parameters: several statements in one call
    except psycopg.Error as exc:
        raise SandboxError(
            f"could not bootstrap the database: {type(exc).__name__}: {exc}\n"
            "Hint: check sandbox/sql/schema.sql and the postgres log."
        ) from exc
