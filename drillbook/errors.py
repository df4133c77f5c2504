"""Errors of the tooling that are not about a check: what the caller got wrong, and a record
that cannot be kept.

`UsageError` is a `ConfigError` about the command itself: a runbook, an environment or a
parameter that does not exist or does not parse. The CLI answers it with exit 2 (usage);
a broken policy file or notebook stays a `ConfigError`, exit 4. `RecordError`: the run's
record cannot be written, so the run does not start, or stops before its next cell.
"""

from __future__ import annotations

from checks import CheckError, ConfigError

__all__ = ["RecordError", "UsageError"]


class UsageError(ConfigError):
    """A runbook, environment, level or parameter given on the command line is wrong."""


class RecordError(CheckError):
    """The run's folder or record cannot be written (a path that is a file, no permission, a full disk)."""
