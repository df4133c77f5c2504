"""The kernel factory: a process that imports the kernel once and forks a fresh kernel per request.

Started by `drillbook.kernels.KernelPool` as `python -m drillbook._factory MODULE...`.
(`python -m drillbook._factory --exec MODULE... -- KERNEL-ARGS` is a single kernel
instead, in this process, once the modules are imported: what `launch` starts.)
It imports ipykernel and the named modules (the checks library), then reads one
JSON request per line on stdin and answers one JSON line on stdout:

    {"connection_file": "...", "log": "...", "cwd": "..."}   →   {"pid": 1234}

Each kernel is a child forked after those imports and before any kernel object
exists: a new process with an empty user namespace, as isolated from the kernels
before it as a kernel started from scratch, minus the second of imports. The
factory takes no part in a kernel's life after the fork; it reaps its children
and exits when stdin closes, and its kernels stop when their parent goes
(ipykernel's parent poller).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

# Options of every kernel drillbook starts. IPython's history would keep every cell a
# runbook ran, parameters included, in ~/.ipython: runs are recorded by drillbook's own
# redacted record instead, and kernels share no state through that database.
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)


def _become_kernel(request: dict[str, Any]) -> None:
    """In the forked child: detach, point the standard streams at the log, run the kernel."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel's own subprocesses are its to reap
        os.setsid()  # a Ctrl-C at the caller's terminal reaches the caller, which stops its kernels
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        _start_kernel(
            ["-f", request["connection_file"], f"--IPKernelApp.parent_handle={os.getppid()}", *KERNEL_OPTIONS]
        )
        status = 0
    except BaseException as exc:  # the child must never return into the factory's loop
        print(f"kernel failed to start: {exc!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(status)


def _preload(modules: list[str]) -> None:
    import ipykernel.ipkernel  # the expensive part of a kernel's start-up
    import ipykernel.kernelapp  # noqa: F401

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a kernel can still import it itself, and fail there
            print(f"could not preload {name}: {exc!r}", file=sys.stderr, flush=True)


def _start_kernel(argv: list[str]) -> None:
    """Run an IPython kernel in this process with command line `argv`, until it is stopped."""
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)  # type: ignore[no-untyped-call]
    app.start()  # type: ignore[no-untyped-call]


def run_kernel(modules: list[str], argv: list[str]) -> None:
    """One kernel in this process, after importing `modules`: while they load, the caller
    loads too, and the notebook's first imports find them done."""
    _preload(modules)
    _start_kernel(argv)


def main(preload: list[str]) -> None:
    _preload(preload)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they exit
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_kernel(request)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--exec"]:
        split = sys.argv.index("--")
        run_kernel(sys.argv[2:split], sys.argv[split + 1 :])
    else:
        main(sys.argv[1:])
