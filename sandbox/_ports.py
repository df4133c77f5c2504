"""Host ports for a sandbox's listening services, kept apart from other sandboxes' picks.

Both drivers publish every listening service on a loopback port they choose at `up`
(the native driver binds the services to it, the compose driver has Docker publish
the container's port there), so that a service stopped and started again keeps its
endpoint.
"""

from __future__ import annotations

import fcntl
import json
import socket
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from sandbox._driver import SERVICES

LISTENERS = tuple(service for service in SERVICES if service != "traffic")  # what needs a port


# Ports this machine's sandboxes picked lately: between picking a free port and its service
# binding it, another sandbox starting at the same time must not pick it too.
PORT_LEDGER = "drillbook-sandbox-ports.json"  # in the system's temporary folder
PORT_HOLD_S = 300.0  # how long a picked port stays off-limits to other sandboxes


def pick_ports(ledger: Path | None = None, *, names: Sequence[str] = LISTENERS) -> dict[str, int]:
    """A free loopback port per listening service (`names`, default the reference sandbox's):
    all different, and none that another sandbox or stack picked in the last PORT_HOLD_S
    seconds (`ledger`, default in the temp folder)."""
    return dict(zip(names, _pick(len(names), ledger), strict=True))


def pick_port(ledger: Path | None = None) -> int:
    """One free loopback port that no sandbox picks for PORT_HOLD_S seconds: for a server
    started beside the sandboxes that binds its port only after a while (`mkdocs serve`)."""
    (port,) = _pick(1, ledger)
    return port


def _pick(count: int, ledger: Path | None) -> list[int]:
    ledger = ledger or Path(tempfile.gettempdir()) / PORT_LEDGER
    with ExitStack() as stack:
        held = _held_ports(stack, ledger)
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())  # open until all are picked: they differ
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in held:
                ports.append(port)
        held.update(dict.fromkeys(ports, time.time() + PORT_HOLD_S))
        return ports


def _held_ports(stack: ExitStack, ledger: Path) -> dict[int, float]:
    """The ledger's unexpired ports, locked until `stack` closes, and written back then.

    A ledger that cannot be opened (another user's, a read-only folder) holds nothing:
    the ports are then only as safe as the kernel's choice."""
    try:
        handle = stack.enter_context(ledger.open("a+", encoding="utf-8"))
    except OSError:
        return {}
    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
    handle.seek(0)
    try:
        entries = {int(port): float(until) for port, until in json.loads(handle.read() or "{}").items()}
    except (ValueError, AttributeError):
        entries = {}  # a damaged ledger is rebuilt
    now = time.time()
    held = {port: until for port, until in entries.items() if until > now}

    def write_back() -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({str(port): until for port, until in held.items()}))
        handle.flush()

    stack.callback(write_back)  # runs before the handle closes (ExitStack is last in, first out)
    return held
