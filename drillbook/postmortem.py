"""Post-mortem drafts: the template with its placeholders filled and a timeline from run records.

Every `drillbook run` leaves a JSON record of what ran, when, what it saw and
what it changed. `draft` turns the records of one incident into the timeline
of the post-mortem template (the "Post-mortem" block of docs/templates/index.md,
the same text the site offers), so nobody rebuilds it from chat scrollback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from checks import ConfigError, format_duration, load_severity, observed_change

TEMPLATES = Path("docs") / "templates" / "index.md"
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


# What an alert group's timeline (drillbook receive's alerts.jsonl) adds to the runs' own records.
_ALERT_EVENTS = {
    "alert firing": lambda e: f"alert {e.get('alert')} fires",
    "alert resolved": lambda e: f"alert {e.get('alert')} resolved",
    "unrouted": lambda e: f"alert {e.get('alert')} runs nothing: {e.get('reason')}",
    "closed": lambda e: f"the group resolved before {', '.join(e.get('dropped', []))} ran",
    "triage sent": lambda e: f"triage sent to {e.get('notifier')}",
    "triage not sent": lambda e: f"triage NOT sent to {e.get('notifier')}: {e.get('detail')}",
}


def timeline(
    records: Iterable[dict[str, Any]], alert_events: Iterable[dict[str, Any]] = ()
) -> list[tuple[str, str, str]]:
    """(time, event, source) rows from run records and an alert group's timeline, in order."""
    events: list[tuple[str, str, str]] = []
    for event in alert_events:
        describe = _ALERT_EVENTS.get(str(event.get("event")))
        when = event.get("at") if event.get("event") in ("alert firing", "alert resolved") else None
        when = when if when and not str(when).startswith("0001") else event.get("time")
        if describe is not None and when:
            stamp = datetime.fromisoformat(str(when).replace("Z", "+00:00")).astimezone().isoformat()
            events.append((stamp, describe(event), "Alertmanager and drillbook receive"))
    for record in records:
        source = f"run of {record['runbook']} in {record['environment']}"
        who = record.get("operator") or "someone"
        events.append((record["started_at"], f"{who} runs the {record['runbook']} runbook", source))
        for cell in record.get("cells", []):
            when = cell.get("finished_at") or record["started_at"]
            verifying = "verify" in (cell.get("tags") or [])
            for result in cell.get("results", []):
                if result["status"] != "OK" or verifying:
                    step = "verified" if verifying else "observed"
                    text = f"{step}: {result['name']} {result['status']}, {result['summary']}"
                    events.append((when, text, source))
            severity = cell.get("severity")
            if severity and severity.get("level"):
                text = f"suggested {severity['level']}: {'; '.join(severity['reasons'])}"
                events.append((when, text, source))
            for action in cell.get("actions", []):
                if action["state"] == "planned":
                    continue  # a dry run did nothing to the system
                text = f"{action['state']}: {action['action']} on {action['target']}"
                if observed := observed_change(action.get("before"), action.get("after")):
                    text += f" ({observed})"
                events.append((action["finished_at"], text, source))
        if record.get("error"):
            last = str(record["error"]).strip().splitlines()[-1]
            events.append(
                (record.get("finished_at") or record["started_at"], f"the run stopped: {last}", source)
            )
    return sorted(events)


def _rows(events: Sequence[tuple[str, str, str]]) -> list[str]:
    rows = ["| Time | Event | Source |", "| --- | --- | --- |"]
    for when, event, source in events:
        stamp = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"| {stamp} | {event.replace('|', '/')} | {source} |")
    return rows


def template_text(root: Path) -> str:
    """The post-mortem template: the Markdown block under "Post-mortem" on the templates page."""
    path = root / TEMPLATES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no templates page at {path}: the post-mortem template lives there") from None
    section = re.search(r"^## Post-mortem\s*$(.*?)^```markdown\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    if section is None:
        raise ConfigError(f"{path}: no '## Post-mortem' section with a ```markdown template block")
    return section[2]


def draft(
    root: Path,
    *,
    title: str,
    level: str,
    lead: str,
    records: Sequence[dict[str, Any]],
    alert_events: Sequence[dict[str, Any]] = (),
) -> str:
    """The post-mortem template of `root`, filled for this incident."""
    text = template_text(root)
    severity = load_severity(root / "policy" / "severity.yml").level(level)
    events = timeline(records, alert_events)
    first, last = (events[0][0], events[-1][0]) if events else ("", "")
    values = {
        "title": title,
        "severity": severity.label,
        "lead": lead,
        "start_time": _minute(first),
        "end_time": _minute(last),
        "duration": _duration(first, last),
        "author": records[0].get("operator", "") if records else "",
        "acknowledge_within": format_duration(severity.acknowledge_within),
        "resolve_within": format_duration(severity.resolve_within),
        "update_every": format_duration(severity.update_every),
    }
    text = _PLACEHOLDER.sub(lambda m: values.get(m[1]) or m[0], text)
    if events:
        text = _replace_timeline(text, _rows(events))
    return text


def _minute(when: str) -> str:
    return datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M") if when else ""


def _duration(first: str, last: str) -> str:
    if not first:
        return ""
    span = datetime.fromisoformat(last) - datetime.fromisoformat(first)
    return f"{span.total_seconds() / 60:.0f} min (as far as the run records show)"


def _replace_timeline(text: str, rows: list[str]) -> str:
    """Put `rows` in place of the table under the timeline heading (or add the section)."""
    lines = text.splitlines()
    heading = next((i for i, line in enumerate(lines) if _TIMELINE_HEADING.match(line)), None)
    if heading is None:
        return text.rstrip() + "\n\n## Timeline\n\n" + "\n".join(rows) + "\n"
    start = heading + 1
    end = start
    while end < len(lines) and (lines[end].startswith("|") or not lines[end].strip()) and end - start < 200:
        if not lines[end].strip() and end > start and lines[end - 1].startswith("|"):
            break
        end += 1
    return "\n".join([*lines[:start], *rows, *lines[end:]]) + "\n"
