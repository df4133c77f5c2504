"""Secrets written into the repository: a notebook or a page that holds one is an error.

The redactor masks secrets at every exit; this rule keeps them out of git in the first
place. Two detectors, and a line either of them flags is an error:

- the redactor's own shapes (`checks.redact`): what drillbook masks at every exit, so
  what it masks is never committed either. They cover the shapes of tests/secret_shapes.py
  that no general detector knows: a password in a DSN without a user name, a SQL
  `PASSWORD '...'`, an Authorization header, a `name = value` whose name says secret;
- Yelp's detect-secrets, with its default plugins and false-positive filters: provider
  formats the hand list does not carry (npm-style registries, Discord, Artifactory, IBM
  and others) and quoted strings of high entropy.

Measured on tests/secret_shapes.py with detect-secrets 1.5.0: alone it found 6 of the 19
shapes of the first corpus in a notebook and 10 in a page (its provider plugins want the
exact length of real tokens, and its entropy filters drop the corpus's made-up values),
and flagged none of its PROSE nor any published page or notebook of this repository; it
found eight provider formats the hand list then lacked (GitLab, PyPI, SendGrid, Twilio,
Mailchimp, Telegram, Azure storage, Square), which the redactor now carries too, so they
are masked at run time as well. Hence both. A line the library flags wrongly can carry
its `pragma: allowlist secret` comment, which silences the library's detectors only: the
hand shapes are what the redactor would mask anyway.

`checks` may not import detect-secrets (its dependencies are fixed by the architecture),
so what only the library knows (a quoted high-entropy string, say) is caught before a
commit, not masked at run time.

The fix for either is an environment variable that environments.yml names, read with
`Targets.secret`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from detect_secrets.core.scan import scan_file
from detect_secrets.settings import default_settings

from checks import UnreadableFile, read_utf8
from checks.redact import Redactor
from drillbook.lint._model import Sink

__all__ = ["check_secrets"]

_FIX = (
    "read it from an environment variable that policy/environments.yml names (Targets.secret), "
    "never write it here"
)


def check_secrets(files: Iterable[Path], sink: Sink) -> None:
    """An error for every line of `files` that holds something shaped like a secret."""
    shapes = Redactor()  # shapes only: a declared secret's value is never in the repository
    with default_settings():
        for path in files:
            try:
                lines = read_utf8(path).splitlines()
            except UnreadableFile:
                continue  # reported where the file is read for its content
            found = {n: "" for n, line in enumerate(lines, start=1) if shapes.text(line) != line}
            for secret in scan_file(str(path)):
                found.setdefault(secret.line_number, secret.type)
            for number, kind in sorted(found.items()):
                what = (
                    f"something shaped like a secret ({kind})" if kind else "something shaped like a secret"
                )
                sink.error(path, number, f"this line holds {what}: {_FIX}")
