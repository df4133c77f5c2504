"""Post-mortem drafts: the template with its placeholders filled and a timeline from run records.

Every `drillbook run` leaves a JSON record of what ran, when, what it saw and
what it changed. `draft` turns the records of one incident into the timeline
of the post-mortem template (docs/templates/post-mortem.md), so nobody has to
rebuild it from chat scrollback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from checks import ConfigError, escalation_at, format_duration, load_severity

TEMPLATE = Path("docs") / "templates" / "post-mortem.md"
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)
_PLACEHOLDER = re.compile(r"\[\[([a-z_]+)\]\]")
_TIMELINE_HEADING = re.compile(r"^(#+)\s.*timeline.*$", re.IGNORECASE | re.MULTILINE)


def run_records(folder: Path, *, since: timedelta, incident: str | None = None) -> list[dict[str, Any]]:
    """The run records under `folder` that started within `since` (and belong to `incident`), oldest first."""
    cutoff = datetime.now().astimezone() - since
    records = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            started = datetime.fromisoformat(record["started_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a run record
        if started < cutoff or (incident is not None and record.get("incident") != incident):
            continue
        records.append(record)
    return sorted(records, key=lambda r: str(r["started_at"]))


def timeline(records: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(time, event) rows from run records, in order."""
    events: list[tuple[str, str]] = []
    for record in records:
        who = record.get("operator") or "someone"
        events.append(
            (record["started_at"], f"{who} ran `{record['runbook']}` against {record['environment']}")
        )
        for cell in record.get("cells", []):
            when = cell.get("finished_at") or record["started_at"]
            verifying = "verify" in (cell.get("tags") or [])
            for result in cell.get("results", []):
                if result["status"] != "OK" or verifying:
                    step = "verified" if verifying else "observed"
                    events.append((when, f"{step}: {result['name']} {result['status']}: {result['summary']}"))
            severity = cell.get("severity")
            if severity and severity.get("level"):
                events.append((when, f"suggested {severity['level']}: {'; '.join(severity['reasons'])}"))
            for action in cell.get("actions", []):
                if action["state"] == "applied":
                    events.append(
                        (action["finished_at"], f"applied: {action['action']} on {action['target']}")
                    )
        if record.get("error"):
            last = str(record["error"]).strip().splitlines()[-1]
            events.append((record.get("finished_at") or record["started_at"], f"the run stopped: {last}"))
    return sorted(events)


def _table(events: Sequence[tuple[str, str]]) -> str:
    if not events:
        return "*No run records were found for this incident: fill the timeline by hand.*"
    rows = ["| Time | Event |", "| --- | --- |"]
    for when, event in events:
        stamp = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"| {stamp} | {event.replace('|', '/')} |")
    return "\n".join(rows)


def draft(root: Path, *, title: str, level: str, lead: str, records: Sequence[dict[str, Any]]) -> str:
    """The post-mortem template of `root`, filled for this incident."""
    path = root / TEMPLATE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no post-mortem template at {path}: the site's templates provide it") from None
    text = _FRONT_MATTER.sub("", text, count=1)
    if "{{" in text or "{%" in text:
        text = _render_macros(root, text, path)
    severity = load_severity(root / "policy" / "severity.yml").level(level)
    events = timeline(records)
    start = events[0][0] if events else ""
    values = {
        "title": title,
        "severity": severity.label,
        "lead": lead or "[[lead]]",
        "start_time": datetime.fromisoformat(start).strftime("%Y-%m-%d %H:%M") if start else "[[start_time]]",
        "update_every": format_duration(severity.update_every),
        "escalation": str(escalation_at(severity, timedelta(0))),
    }
    table = _table(events)
    text = _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text.replace("[[timeline]]", table))
    if table not in text:
        heading = _TIMELINE_HEADING.search(text)
        if heading:
            text = text[: heading.end()] + "\n\n" + table + "\n" + text[heading.end() :]
        else:
            text += f"\n\n## Timeline\n\n{table}\n"
    return text


class _MacroHost:
    """The part of mkdocs-macros' environment that drillbook.site's `define_env` uses."""

    def __init__(self, root: Path) -> None:
        self.conf = {"config_file_path": str(root / "mkdocs.yml"), "docs_dir": str(root / "docs")}
        self.page = None
        # Markdown, not HTML: nothing to escape.
        self.env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701

    def macro(self, function: Callable[..., Any], name: str = "") -> Callable[..., Any]:
        self.env.globals[name or function.__name__] = function
        return function


def _render_macros(root: Path, text: str, path: Path) -> str:
    """Evaluate the site's macros in the template, as the site build does."""
    from drillbook.site import define_env

    host = _MacroHost(root)
    define_env(host)
    try:
        return host.env.from_string(text).render()
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{path}: the template does not render: {exc}") from exc
