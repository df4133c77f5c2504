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

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drillbook._factory import KERNEL_OPTIONS

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

# ipykernel's sockets: with the ipc transport these are suffixes of the socket path
_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class KernelProcess(Protocol):
    """What a kernel's process must answer: a `subprocess.Popen`, or a kernel forked by a factory."""

    pid: int

    def poll(self) -> int | None: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class LaunchedKernel:
    """A kernel process started by `launch` or taken from a `KernelPool`, with its connection file."""

    # A plain class, not a dataclass: `drillbook run` imports this module before it launches
    # its kernel, and dataclasses (through inspect) would add to that path.
    def __init__(self, process: KernelProcess, connection_file: Path, folder: Path) -> None:
        self.process = process
        self.connection_file = connection_file
        self.folder = folder
        self._stopped = False

    def __repr__(self) -> str:
        return f"LaunchedKernel(pid={self.process.pid}, connection_file={self.connection_file})"

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


# A unix socket's path must fit in sockaddr_un.sun_path: 108 bytes on Linux, 104 on macOS.
_SOCKET_PATH_LIMIT = 103


def _connection(prefix: str = "drillbook-kernel-") -> tuple[Path, Path]:
    """A private folder and a connection file in it for a kernel on unix sockets."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    longest = folder / f"kernel-{len(_CHANNELS)}"
    if len(os.fsencode(longest)) > _SOCKET_PATH_LIMIT:
        folder.rmdir()
        raise OSError(
            f"a kernel socket would be {longest}, longer than the {_SOCKET_PATH_LIMIT} bytes "
            "a unix socket path may have; set TMPDIR to a shorter folder"
        )
    os.chmod(folder, 0o700)  # the sockets inside are the kernel's only door
    connection: dict[str, object] = {f"{name}_port": port for port, name in enumerate(_CHANNELS, start=1)}
    connection |= {
        "transport": "ipc",
        "ip": str(folder / "kernel"),
        "key": os.urandom(32).hex(),  # what secrets.token_hex does, without importing hmac
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }
    connection_file = folder / "connection.json"
    connection_file.write_text(json.dumps(connection), encoding="utf-8")
    connection_file.chmod(0o600)
    return folder, connection_file


def launch(
    *, cwd: Path | None = None, env: dict[str, str] | None = None, preload: Sequence[str] = ()
) -> LaunchedKernel:
    """Start a Python kernel of this interpreter; it talks over private unix sockets.

    `preload`: modules the kernel imports before it answers, such as the checks
    library a runbook's first cell imports; they load while the caller starts up.
    """
    folder, connection_file = _connection()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file), *KERNEL_OPTIONS]
    if preload:
        argv = [sys.executable, "-m", "drillbook._factory", "--exec", *preload, "--", *argv[3:]]
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


class _Forked:
    """A kernel forked by the factory: not our child, so it is watched and signalled through a
    pidfd, which stays bound to that process even once its pid is free for another."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            self._fd = os.pidfd_open(self.pid)
        # without a pidfd (the kernel already gone), there is nothing left to signal

    def _exited(self, timeout: float) -> bool:
        if self._fd is None:
            return True
        readable, _, _ = select.select([self._fd], [], [], timeout)
        if readable:
            os.close(self._fd)
            self._fd = None
        return bool(readable)

    def poll(self) -> int | None:
        return -1 if self._exited(0) else None  # its exit status went to the factory, which reaped it

    def send_signal(self, sig: int) -> None:
        if self._fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._fd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited(timeout if timeout is not None else 1e9):
            raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
        return -1


# What every runbook's first cell imports: targets and policy, the gate, HTTP and
# Prometheus probes. A kernel for one run preloads these while the CLI starts.
CORE = ("checks", "checks.targets", "checks.actions", "checks.http", "checks.prometheus", "checks.severity")
# Imported once by the factory, so that no kernel it forks pays for them: the whole
# checks library and what it stands on.
PRELOAD = (
    *CORE,
    "checks.postgres",
    "checks.redis",
    "checks.reference_service.flags",
    "checks.reference_service.upstream",
    "checks.reference_service.costs",
)


class KernelPool:
    """Fresh kernels, ready before they are asked for.

    A factory process imports ipykernel and the checks library once, then forks
    one kernel per `take()`: every kernel is a new process with an empty namespace
    (no state leaks from one notebook into the next), but starts in a tenth of
    the time a kernel takes from scratch. `size` kernels are kept forked ahead.
    Where the factory cannot run or dies, `take()` falls back to `launch()`.

        with KernelPool(cwd=root) as pool:
            kernel = pool.take()      # ready now, or within milliseconds
            ...                       # execute(..., kernel=kernel), which stops it

    Safe to use from several threads.
    """

    def __init__(
        self,
        *,
        size: int = 2,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        preload: tuple[str, ...] = PRELOAD,
    ) -> None:
        self.cwd, self.env, self.size = cwd, env, max(1, size)
        self._lock = threading.Lock()
        self._ready: list[LaunchedKernel] = []
        self._factory: subprocess.Popen[str] | None = subprocess.Popen(  # argv list, no shell
            [sys.executable, "-m", "drillbook._factory", *preload],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        with self._lock:
            self._fill()

    def _fork(self) -> LaunchedKernel | None:
        """A kernel forked by the factory; None without a working factory."""
        factory = self._factory
        if factory is None or factory.stdin is None or factory.stdout is None:
            return None
        folder, connection_file = _connection()
        try:
            request = {"connection_file": str(connection_file), "log": str(folder / "kernel.log")}
            factory.stdin.write(json.dumps({**request, "cwd": str(self.cwd or "")}) + "\n")
            factory.stdin.flush()
            answer: dict[str, Any] = {}
            while "pid" not in answer:  # the first line is the factory's "ready"
                line = factory.stdout.readline()
                if not line:
                    raise OSError("the kernel factory exited")
                answer = json.loads(line)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
            self._lost_factory()
            return None
        return LaunchedKernel(
            process=_Forked(int(answer["pid"])), connection_file=connection_file, folder=folder
        )

    def _lost_factory(self) -> None:
        """The factory is gone, and the kernels it forked follow their parent: drop them."""
        self._stop_factory()
        doomed = [k for k in self._ready if isinstance(k.process, _Forked)]
        self._ready = [k for k in self._ready if not isinstance(k.process, _Forked)]
        for kernel in doomed:
            kernel.stop()

    def _fill(self) -> None:
        """Up to `size` kernels waiting: forked, or started from scratch once the factory is gone."""
        while len(self._ready) < self.size:
            kernel = self._fork() or launch(cwd=self.cwd, env=self.env)
            self._ready.append(kernel)

    def take(self) -> LaunchedKernel:
        """A fresh kernel for one notebook; the caller stops it (execute does)."""
        with self._lock:
            if self._factory is not None and self._factory.poll() is not None:
                self._lost_factory()
            self._fill()
            kernel = self._ready.pop(0)
            self._fill()
        if not kernel.alive:  # died while waiting (killed from outside): start one from scratch
            kernel.stop()
            return launch(cwd=self.cwd, env=self.env)
        return kernel

    def _stop_factory(self) -> None:
        factory, self._factory = self._factory, None
        if factory is not None:
            with contextlib.suppress(OSError):
                factory.kill()
            factory.wait(timeout=10)

    def close(self) -> None:
        """Stop the kernels nobody took, and the factory."""
        with self._lock:
            ready, self._ready = self._ready, []
            for kernel in ready:
                kernel.stop()
            self._stop_factory()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kernel_info(connection_file: Path) -> dict[str, Any]:
    """The connection file's content (without its key), for diagnostics."""
    data: dict[str, Any] = json.loads(connection_file.read_text(encoding="utf-8"))
    data.pop("key", None)
    return data
