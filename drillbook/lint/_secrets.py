"""Secrets written into the repository: a notebook or a page that holds one is an error.

The redactor masks secrets at every exit; this rule keeps them out of git in the first
place. A line the redactor would change holds something shaped like a secret (a token,
a key, a password in a DSN): the fix is an environment variable that environments.yml
names, read with `Targets.secret`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from checks import UnreadableFile, read_utf8
from checks.redact import Redactor
from drillbook.lint._model import Sink

__all__ = ["check_secrets"]


def check_secrets(files: Iterable[Path], sink: Sink) -> None:
    """An error for every line of `files` that holds something shaped like a secret."""
    shapes = Redactor()  # shapes only: a declared secret's value is never in the repository
    for path in files:
        try:
            lines = read_utf8(path).splitlines()
        except UnreadableFile:
            continue  # reported where the file is read for its content
        for number, line in enumerate(lines, start=1):
            if shapes.text(line) != line:
                sink.error(
                    path,
                    number,
                    "this line holds something shaped like a secret: read it from an environment "
                    "variable that policy/environments.yml names (Targets.secret), never write it here",
                )
