"""The native sandbox on a bad day: its supervisord died under its services, or a service
exits as soon as it starts. The sandbox must tell the truth about its processes and
clean up after them.

Every sandbox here runs in its own temporary DRILLBOOK_SANDBOX_DIR. Whatever the code
under test does, a test kills what it started (checked by pid and start time, so that a
recycled pid is never signalled), so a failing test leaves no orphans behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from checks import Gate, Targets, restart_service
from sandbox import SERVICES, Driver, get_driver, stopped
from tests.integration.support import (
    descendants,
    process_alive,
    running_sandbox,
    sandbox_cli,
    sandbox_dir,
    until,
)

pytestmark = pytest.mark.sandbox

UP_TIMEOUT_S = 120
# A process group leader with a child, both ignoring SIGTERM (SIG_IGN survives exec).
DEAF_TO_SIGTERM = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
time.sleep(300)
"""


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat); None once it has exited
    (a zombie has exited: an orphan's new parent may never reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def snapshot(pids: set[int]) -> dict[int, str]:
    """pid -> start time of the live ones: who they are, for a clean-up that never hits a recycled pid."""
    return {pid: started for pid in pids if (started := start_time(pid)) is not None}


def still_alive(processes: dict[int, str]) -> list[str]:
    """Each of `processes` that still runs (the same process: same start time), as "pid command"."""
    return [
        f"{pid} {command(pid)}" for pid, started in sorted(processes.items()) if start_time(pid) == started
    ]


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def kill_leftovers(processes: dict[int, str]) -> None:
    for pid in [pid for pid, started in processes.items() if start_time(pid) == started]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    until(lambda: not still_alive(processes), timeout_s=15, what="the test's processes to die")


def free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def orphaned_sandbox() -> Iterator[tuple[Driver, Path, dict[int, str]]]:
    """A native sandbox whose supervisord was killed (SIGKILL): its services run on, orphaned.

    Yields the driver, the working directory and the service processes (pid -> start time)."""
    with sandbox_dir() as workdir:
        driver = get_driver("native")
        driver.up(timeout_s=UP_TIMEOUT_S, wait_for_rates=False)
        supervisor = int((workdir / "supervisord.pid").read_text())
        services = snapshot(descendants({supervisor}) - {supervisor})
        try:
            assert len(services) > len(SERVICES)
            os.kill(supervisor, signal.SIGKILL)
            until(lambda: not process_alive(supervisor), timeout_s=15, what="supervisord to die")
            assert len(still_alive(services)) == len(services), "the services died with supervisord"
            yield driver, workdir, services
        finally:
            try:
                driver.down()
            finally:
                kill_leftovers(services)


def test_when_supervisord_died_then_status_reports_the_services_that_still_run() -> None:
    with orphaned_sandbox() as (driver, _, _):
        done = sandbox_cli("status")
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 3, (done.stdout, done.stderr)  # not every service runs supervised
        states = dict(line.split()[:2] for line in done.stdout.splitlines())
        assert states == dict.fromkeys(SERVICES, "orphaned"), done.stdout
        assert "supervisord" in done.stderr
        assert "python -m sandbox down" in done.stderr
        assert driver.status() == dict.fromkeys(SERVICES, "orphaned")


def test_when_supervisord_died_then_down_stops_every_service_process() -> None:
    with orphaned_sandbox() as (driver, _, services):
        ports = [urlsplit(url).port for url in driver.endpoints().values()]
        done = sandbox_cli("down")
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 0, done.stderr
        assert still_alive(services) == []
        assert [port for port in ports if port is not None and not free(port)] == []
        assert driver.status() == dict.fromkeys(SERVICES, "stopped")


def test_when_supervisord_died_then_up_stops_the_orphans_before_it_starts_afresh() -> None:
    with orphaned_sandbox() as (driver, workdir, services):
        postmaster = int((workdir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        assert postmaster in services
        done = sandbox_cli("up", "--timeout", str(UP_TIMEOUT_S), timeout_s=UP_TIMEOUT_S + 30)
        try:
            assert "Traceback" not in done.stderr, done.stderr
            assert still_alive(services) == []
            assert done.returncode == 0, done.stderr
            assert "orphan" in done.stderr  # it says what it stopped
            assert driver.status() == dict.fromkeys(SERVICES, "running")
        finally:
            down = sandbox_cli("down")
        assert down.returncode == 0, down.stderr


def test_stopping_a_group_that_ignores_sigterm_ends_in_sigkill_within_the_deadline() -> None:
    """`down`'s last resort on a dead supervisor's services: TERM to the group, a deadline, KILL."""
    from sandbox._native import terminate_groups

    child = subprocess.Popen([sys.executable, "-c", DEAF_TO_SIGTERM], start_new_session=True)
    try:
        group = until(lambda: descendants({child.pid}) if len(descendants({child.pid})) == 2 else set(),
                      timeout_s=15, what="the group's child")  # fmt: skip
        started = time.monotonic()
        survivors = terminate_groups({"deaf": child.pid}, timeout_s=1.0)
        assert survivors == {}
        assert time.monotonic() - started < 10
        child.wait(timeout=5)
        assert child.returncode == -signal.SIGKILL
        until(lambda: not any(process_alive(pid) for pid in group), timeout_s=5, what="the group to die")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=5)


# -- a service that exits as soon as it starts --------------------------------------------------


# Loaded by every Python process of the sandbox below (PYTHONPATH reaches them through
# supervisord's environment); only the api has ADMIN_TOKEN. It makes the api reach its
# bind after supervisord's `startsecs` (1 s), as a heavier app or a busy machine does, so
# that a failed bind comes after supervisord has called the api RUNNING: what a start
# must not take for success. It slows the start; no readiness check waits on it.
SLOW_API_START = """
import os, time
if "ADMIN_TOKEN" in os.environ:
    time.sleep(1.5)
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    slow = tmp_path_factory.mktemp("slow-api")
    (slow / "sitecustomize.py").write_text(SLOW_API_START)
    with pytest.MonkeyPatch.context() as env, sandbox_dir():
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")])))
        with running_sandbox(timeout_s=UP_TIMEOUT_S) as driver:
            yield driver


@contextmanager
def port_taken(port: int) -> Iterator[None]:
    """Something else listens on `port`, as after a stray process took a stopped service's port."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the api's TIME_WAIT sockets
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield


def test_when_the_api_exits_at_once_then_start_fails_naming_it_and_showing_its_log(sandbox: Driver) -> None:
    port = urlsplit(sandbox.endpoints()["api"]).port
    assert port is not None
    sandbox.stop("api")
    try:
        with port_taken(port):
            done = sandbox_cli("start", "api")
            assert "Traceback" not in done.stderr, done.stderr
            assert done.returncode == 1, (done.stdout, done.stderr)
            assert "api" in done.stderr
            assert "address already in use" in done.stderr.lower()  # the tail of its log
            assert sandbox.status()["api"] != "running"
    finally:
        again = sandbox_cli("start", "api")
    assert again.returncode == 0, again.stderr
    assert sandbox.status()["api"] == "running"


def test_when_the_api_exits_at_once_then_the_runbook_restart_is_reported_failed(sandbox: Driver) -> None:
    targets = Targets.from_env("sandbox")
    port = urlsplit(sandbox.endpoints()["api"]).port
    assert port is not None
    sandbox.stop("api")
    try:
        with port_taken(port):
            outcome = Gate.for_targets(targets, apply=True).run(restart_service(targets, "api"))
            assert outcome.state == "failed", outcome
            assert "api" in outcome.reason
            assert not outcome.changed
    finally:
        sandbox.start("api")
    assert sandbox.status()["api"] == "running"


def test_restarting_the_api_while_redis_is_down_succeeds_and_its_health_says_degraded(
    sandbox: Driver,
) -> None:
    """A restart brings the process back; that a dependency is down is its health's to say."""
    with stopped(sandbox, "redis"):
        sandbox.restart("api")
        assert sandbox.status()["api"] == "running"
        assert httpx.get(f"{sandbox.endpoints()['api']}/health", timeout=5).status_code == 503
    assert sandbox.status()["redis"] == "running"


def test_stop_returns_once_every_process_of_the_service_is_gone(sandbox: Driver) -> None:
    assert sandbox.status()["postgres"] == "running"
    pid_file = Path(os.environ["DRILLBOOK_SANDBOX_DIR"]) / "postgres" / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    processes = snapshot(descendants({postmaster}))
    sandbox.stop("postgres")
    try:
        assert still_alive(processes) == []
        assert sandbox.status()["postgres"] == "stopped"
        sandbox.stop("postgres")  # stopping a stopped service changes nothing and succeeds
    finally:
        sandbox.start("postgres")
    assert sandbox.status()["postgres"] == "running"
