"""Errors raised by the sandbox drivers.

    SandboxError
     ├── NotRunning        no sandbox is up where one was expected (no state file, no supervisor)
     ├── CommandError      a platform command (supervisorctl, docker compose, initdb) failed
     ├── ReadinessTimeout  a service was not ready before its deadline (also a TimeoutError)
     └── StartupError      `up` failed half-way; everything it started has been stopped again

Every message says what was tried and ends with a "Hint: ..." on how to fix it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class SandboxError(Exception):
    """Base class of every error the sandbox raises."""


class NotRunning(SandboxError):
    """No sandbox is running where the caller expected one."""


class CommandError(SandboxError):
    """A platform command exited non-zero (or did not exit in time)."""

    def __init__(self, argv: Sequence[str], returncode: int | None, output: str, *, hint: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        outcome = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"command {outcome}: {shlex.join(self.argv)}\n{output.rstrip()}\nHint: {hint}")


class ReadinessTimeout(SandboxError, TimeoutError):
    """A readiness probe kept failing until its deadline."""

    def __init__(
        self, what: str, *, timeout_s: float, attempts: int, last_error: str, tried: str, hint: str
    ) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"{what} not ready after {timeout_s:.1f}s ({attempts} attempts; "
            f"last error: {last_error})\nTried: {tried}\nHint: {hint}"
        )


class StartupError(SandboxError):
    """`up` failed; carries the failing service (if known) and the tail of its log."""

    def __init__(self, message: str, *, service: str | None, log_tail: str) -> None:
        self.service = service
        self.log_tail = log_tail
        label = f"{service} log" if service else "logs"
        super().__init__(f"{message}\n--- last lines of the {label} ---\n{log_tail.rstrip()}")
