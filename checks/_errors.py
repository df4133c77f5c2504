"""The errors a check, a policy file or an action can raise.

    CheckError
    ├── ConfigError     a policy or environment file, or a parameter, is wrong
    │   └── UnreadableFile  a project file cannot be read, or is not UTF-8 text
    ├── ProbeError      could not observe: timeout, refused connection, bad auth
    ├── CheckFailed     observed, and what was observed is bad
    └── ActionError
        └── ActionFailed    the step ran and the platform reported a failure

A gate that refuses a step does not raise: it returns an `Outcome` in state
`refused` (checks.actions), which the record keeps and the CLI turns into exit 3.

"Could not observe" and "observed bad" are different facts for a responder,
so they are different types: never tell them apart by their message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from checks._result import CheckResult


class CheckError(Exception):
    """Base class of every error raised by `checks`."""


class ConfigError(CheckError):
    """A policy file, an environment or a parameter is wrong; the message says how to fix it."""


class UnreadableFile(ConfigError):
    """A project file (policy, page, notebook) cannot be read, or is not UTF-8 text."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class ProbeError(CheckError):
    """The target could not be observed (timeout, connection refused, authentication)."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


class CheckFailed(CheckError):
    """A check observed its target and found it bad; `result` holds what it saw."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.name}: {result.status.value}: {result.summary}")
        self.result = result


class ActionError(CheckError):
    """Base class of the errors of a mitigation step."""


class ActionFailed(ActionError):
    """A mutating step ran and failed; the message carries the platform's answer."""
