"""What every part of the site shares: the error, where inputs live, and Markdown helpers."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from checks import (
    POLICY_DIR_VARIABLE,
    EscalationPolicy,
    SeverityPolicy,
    format_duration,
    load_escalation,
    load_severity,
)

TODAY_VARIABLE = "DRILLBOOK_TODAY"
"""Set to an ISO date to build the site as if it were that day (review status; tests, reproducible builds)."""

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: front matter is read for every page."""

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


class SiteError(Exception):
    """A macro cannot render what a page asked for; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class SitePaths:
    """Where the site's inputs live, all derived from the directory that holds mkdocs.yml."""

    root: Path
    docs: Path

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> SitePaths:
        """From the mkdocs config: `config_file_path` and `docs_dir` (absolute once validated)."""
        root = Path(conf["config_file_path"]).resolve().parent
        return cls(root=root, docs=root / Path(conf.get("docs_dir") or "docs"))

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def runbooks(self) -> Path:
        return self.docs / "runbooks"

    @property
    def executed(self) -> Path:
        """Executed notebooks that a verified run (CI, `make`) left for the site."""
        return self.root / "build" / "executed"

    @property
    def drill_summary(self) -> Path:
        """`{"<slug>": {...} | [{...}, ...]}` written by the drills."""
        return self.root / "build" / "drills" / "summary.json"

    @property
    def placeholders(self) -> Path:
        return self.docs / "templates" / "placeholders.yml"

    def policy_file(self, name: str) -> Path | None:
        """`policy/<name>` beside mkdocs.yml, or None to let `$DRILLBOOK_POLICY_DIR` decide."""
        if os.environ.get(POLICY_DIR_VARIABLE):
            return None
        return self.root / "policy" / name

    def severity(self) -> SeverityPolicy:
        """The severity policy, parsed and validated once per build (pages ask for it many times)."""
        path = self.policy_file("severity.yml")
        return _severity(path, _stamp(path, "severity.yml"))

    def escalation(self) -> EscalationPolicy:
        path = self.policy_file("escalation.yml")
        return _escalation(path, _stamp(path, "escalation.yml"), self.severity())


def _stamp(path: Path | None, name: str) -> tuple[str, int]:
    """What identifies a policy file's content: its resolved path and modification time."""
    resolved = path if path is not None else Path(os.environ.get(POLICY_DIR_VARIABLE, ".")) / name
    try:
        return str(resolved), resolved.stat().st_mtime_ns
    except OSError:
        return str(resolved), 0


@lru_cache(maxsize=16)
def _severity(path: Path | None, stamp: tuple[str, int]) -> SeverityPolicy:
    return load_severity(path)


@lru_cache(maxsize=16)
def _escalation(path: Path | None, stamp: tuple[str, int], severity: SeverityPolicy) -> EscalationPolicy:
    return load_escalation(path, severity=severity)


def today() -> date:
    """The build's date: `$DRILLBOOK_TODAY` when set, else today in UTC."""
    value = os.environ.get(TODAY_VARIABLE)
    if value:
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise SiteError(f"${TODAY_VARIABLE}={value!r} is not a date such as 2026-11-20") from exc
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------- files


def front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a Markdown page, as a mapping."""
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise SiteError(f"{path}: no front matter; the page starts with a '---' YAML block")
    try:
        data = yaml.load(match[1], Loader=_LOADER)  # noqa: S506 - a safe loader, libyaml's when present
    except yaml.YAMLError as exc:
        raise SiteError(f"{path}: the front matter is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SiteError(f"{path}: the front matter must be a mapping of keys to values")
    return data


def body(path: Path) -> str:
    """A Markdown page without its front matter."""
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    return text[match.end() :] if match else text


# --------------------------------------------------------------------------- Markdown helpers


def escape(text: str) -> str:
    """Make text safe inside one table cell: no pipes, no line breaks."""
    return " ".join(text.split()).replace("|", r"\|")


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, attrs: str = "") -> str:
    """A Markdown table; cells must already be escaped. `attrs` wraps it in a `<div>` with them."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    text = "\n".join(lines)
    if attrs:
        return f'\n<div {attrs} markdown="1">\n\n{text}\n\n</div>\n'
    return "\n" + text + "\n"


def fence(code: str, language: str) -> str:
    """A fenced code block whose fence is longer than any backtick run inside the code."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{language}\n{code.rstrip()}\n{marks}"


def duration(value: timedelta) -> str:
    return format_duration(value)


def json_script(element_id: str, data: Any) -> str:
    """Data for the page's scripts, as `<script type="application/json">`; safe against `</script>`."""
    text = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return f'\n<script type="application/json" id="{html.escape(element_id)}">{text}</script>\n'
