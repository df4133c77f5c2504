"""Helpers of the sandbox integration tests: polling to a deadline, the CLI, processes and sockets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from drillbook.site import read_runbook_pages
from sandbox import Driver, get_driver

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = "https://runbooks.example.internal/"  # mkdocs.yml site_url


def runbook_of_alert() -> dict[str, str]:
    """Each alert and the runbook whose front matter lists it (`alerts:`), the page its
    runbook_url must point at: read from the runbooks, never kept by hand here."""
    pages = read_runbook_pages(REPO_ROOT / "docs" / "runbooks")
    return {alert: page.slug for page in pages for alert in page.alerts}


T = TypeVar("T")


def until(probe: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.25) -> T:
    """Return the first truthy `probe()`; fail naming `what` and the last value at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}; last value: {value!r}")
        time.sleep(interval_s)  # the poll interval


def sandbox_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m sandbox ARGS --driver native`, as a user would type it."""
    argv = [sys.executable, "-m", "sandbox", *args, "--driver", "native"]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO_ROOT, env=env
    )


@contextmanager
def sandbox_dir() -> Iterator[Path]:
    """A fresh DRILLBOOK_SANDBOX_DIR (mode 755: as root, PostgreSQL runs as `postgres`)."""
    path = Path(tempfile.mkdtemp(prefix="drillbook-sandbox-"))
    path.chmod(0o755)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DRILLBOOK_SANDBOX_DIR", str(path))
        env.delenv("DRILLBOOK_SANDBOX_STATE", raising=False)
        yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_sandbox(timeout_s: float = 90) -> Iterator[Driver]:
    """A native sandbox in the current DRILLBOOK_SANDBOX_DIR, stopped however the block ends.

    These tests look at processes, faults and alerts, not at runbooks' rates: no wait
    for a whole rate window."""
    driver = get_driver("native")
    driver.up(timeout_s=timeout_s, wait_for_rates=False)
    try:
        yield driver
    finally:
        driver.down()


def process_alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(roots: set[int]) -> set[int]:
    """`roots` and every live process below them."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found = set(roots)
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return {pid for pid in found if process_alive(pid)}


def listening_addresses(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, local address, port) of every TCP socket in LISTEN state that `pids` hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except (FileNotFoundError, PermissionError):
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    found: list[tuple[int, str, int]] = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            address_hex, port_hex = local.split(":")
            found.append((inodes[inode], _address(address_hex, width), int(port_hex, 16)))
    return found


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    flat = b"".join(words)
    if flat[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in flat[12:])
    return ":".join(flat[i : i + 2].hex() for i in range(0, 16, 2))


def is_loopback(address: str) -> bool:
    return (
        address.startswith("127.")
        or address.startswith("::ffff:127.")
        or address == ("0000:0000:0000:0000:0000:0000:0000:0001")
    )
