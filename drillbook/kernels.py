"""Kernels started before they are needed, so their boot overlaps the caller's own start-up.

A Jupyter kernel takes most of a second to boot. `launch()` starts one with
nothing but the standard library (no jupyter_client, no zmq: those imports
alone cost half a second), so a command can launch first and import, parse
and load policy while the kernel boots. Each kernel serves one notebook: a
fresh process per run, so no state leaks from one runbook into the next.

    kernel = launch(cwd=root)          # returns at once
    ...                                # the caller's own start-up
    manager = kernel.manager()         # jupyter_client, attached to that process
    ...                                # nbclient executes with km=manager
    kernel.stop()                      # kill and clean up; safe to call twice
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

# ipykernel's sockets: with the ipc transport these are suffixes of the socket path
_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


@dataclass
class LaunchedKernel:
    """A kernel process started by `launch`, with its connection file."""

    process: subprocess.Popen[bytes]
    connection_file: Path
    folder: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def manager(self) -> AsyncKernelManager:
        """A jupyter_client manager attached to this process, for nbclient's `km=`."""
        from drillbook._attached import AttachedKernelManager

        return AttachedKernelManager.attach(self)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the kernel process printed (why it died, when it did)."""
        try:
            text = (self.folder / "kernel.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def interrupt(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Kill the kernel (its work is recorded by now) and remove its sockets."""
        if self._stopped:
            return
        self._stopped = True
        if self.alive:
            self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LaunchedKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(*, cwd: Path | None = None, env: dict[str, str] | None = None) -> LaunchedKernel:
    """Start a Python kernel of this interpreter; it talks over private unix sockets."""
    folder = Path(tempfile.mkdtemp(prefix="drillbook-kernel-"))
    os.chmod(folder, 0o700)  # the sockets inside are the kernel's only door
    connection: dict[str, object] = {f"{name}_port": port for port, name in enumerate(_CHANNELS, start=1)}
    connection |= {
        "transport": "ipc",
        "ip": str(folder / "kernel"),
        "key": secrets.token_hex(32),
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }
    connection_file = folder / "connection.json"
    connection_file.write_text(json.dumps(connection), encoding="utf-8")
    connection_file.chmod(0o600)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file)]
    with (folder / "kernel.log").open("wb") as log:  # the kernel's own chatter, read if it dies
        process = subprocess.Popen(  # argv list, no shell
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the CLI, which stops the kernel
        )
    return LaunchedKernel(process=process, connection_file=connection_file, folder=folder)


def kernel_info(connection_file: Path) -> dict[str, Any]:
    """The connection file's content (without its key), for diagnostics."""
    data: dict[str, Any] = json.loads(connection_file.read_text(encoding="utf-8"))
    data.pop("key", None)
    return data
