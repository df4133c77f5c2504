"""What the caller got wrong, as distinct from what is wrong with the project.

`UsageError` is a `ConfigError` about the command itself: a runbook, an environment or a
parameter that does not exist or does not parse. The CLI answers it with exit 2 (usage);
a broken policy file or notebook stays a `ConfigError`, exit 4.
"""

from __future__ import annotations

from checks import ConfigError

__all__ = ["UsageError"]


class UsageError(ConfigError):
    """A runbook, environment, level or parameter given on the command line is wrong."""
