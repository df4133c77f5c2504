"""Pages rendered from policy/: the severity matrix, the decision aid, escalation tables and ladders.

Escalation steps and contacts are typed `Any` here: their classes are private to `checks`.
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

from checks import CheckError, EscalationPolicy, Level, SeverityPolicy

from ._common import SiteError, duration, escape, json_script, table

SEVERITY_FIELDS = (
    "label",
    "name",
    "definition",
    "acknowledge_within",
    "resolve_within",
    "update_every",
    "paging",
)
"""The fields of a severity level that `severity_target` renders."""

POLICY_DATA_ID = "drillbook-policy"
"""The id of the `<script type="application/json">` that gives the page's scripts the severity policy."""


def render_severity_matrix(policy: SeverityPolicy) -> str:
    """Every level of the severity policy as one Markdown table, most severe first."""
    header = ("Level", "Definition", "Acknowledge within", "Resolve within", "Update every", "Paging")
    rows = []
    for level in policy.levels:
        aliases = f" ({', '.join(level.aliases)})" if level.aliases else ""
        examples = "".join(f"<br>• {escape(example)}" for example in level.examples)
        rows.append(
            (
                f'**{level.id}**{aliases}<br><span class="drillbook-muted">{escape(level.name)}</span>',
                f'{escape(level.definition)}<span class="drillbook-muted">{examples}</span>',
                duration(level.acknowledge_within),
                duration(level.resolve_within),
                duration(level.update_every),
                escape(level.paging),
            )
        )
    return table(header, rows, attrs='class="drillbook-severity-matrix"')


def render_severity_target(policy: SeverityPolicy, level: str, field: str) -> str:
    """One value of one level (an id or an alias): durations as `15m`, text as written, and a
    trigger (`p95_latency_seconds_above`) in its measure's unit, so that a page never writes a
    threshold of its own."""
    measure = next((m for m in policy.measures.values() if m.key == field), None)
    if measure is not None:
        thresholds = policy.level(level).triggers.thresholds
        if measure.name not in thresholds:
            raise SiteError(f"severity_target: {level} has no trigger {field}")
        return measure.format(thresholds[measure.name])
    if field not in SEVERITY_FIELDS:
        triggers = ", ".join(m.key for m in policy.measures.values())
        raise SiteError(
            f"severity_target: unknown field {field!r}; use one of {', '.join(SEVERITY_FIELDS)}, or a "
            f"trigger: {triggers}"
        )
    value = getattr(policy.level(level), field)
    return duration(value) if isinstance(value, timedelta) else str(value)


def spoken(value: timedelta) -> str:
    """A duration as prose says it: `48 hours`, `1 week`, `3 days`, `30 minutes`."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    if not rest and days and days % 7 == 0:
        weeks = days // 7
        return f"{weeks} week{'s' if weeks > 1 else ''}"
    if not seconds % 3600 and seconds <= 3 * 86400:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours > 1 else ''}"
    if not rest:
        return f"{days} day{'s' if days > 1 else ''}"
    minutes = seconds // 60
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def render_after_incident(policy: SeverityPolicy, key: str) -> str:
    """When one piece of the follow-up is due (`report_within`, ...), as prose says it."""
    try:
        return spoken(policy.due(key))
    except CheckError as exc:
        raise SiteError(f"after_incident: {exc}") from exc


def render_policy_decisions(policy: SeverityPolicy) -> str:
    """Where the policy's sources disagreed: one row per decision, with the value not taken."""
    rows = [(escape(d.topic), escape(d.chosen), escape(d.not_taken), escape(d.why)) for d in policy.decisions]
    return table(("Topic", "Chosen", "Not taken", "Why"), rows, attrs='class="drillbook-table"')


def _trigger_phrases(policy: SeverityPolicy, level: Level) -> list[str]:
    """The level's triggers as prose, from the policy's own words for its measures and conditions."""
    phrases = []
    for name, threshold in level.triggers.thresholds.items():
        measure = policy.measures[name]
        past = "exceeds" if measure.worse == "above" else "falls below"
        phrases.append(f"the {escape(measure.description)} {past} {measure.format(threshold)}")
    return phrases


def render_severity_decision(policy: SeverityPolicy) -> str:
    """'Which severity is this?': one question per level, most severe first; stop at the first yes.
    A level's conditions come first (a fact settles it, whatever the graphs say), then its
    measured triggers; every word and number is the policy's."""
    items = []
    for level in policy.levels:
        facts = [escape(policy.conditions[c].rstrip(".")) for c in sorted(level.triggers.conditions)]
        measured = _trigger_phrases(policy, level)
        either = f" Or does any of these hold: {'; '.join(measured)}?" if measured else ""
        known = f" Or is any of these true: {'; '.join(facts)}?" if facts else ""
        response = (
            f"acknowledge within {duration(level.acknowledge_within)}, "
            f"update every {duration(level.update_every)}, "
            f"{'page' if level.page else 'no page'}"
        )
        items.append(
            f"1. **{escape(level.definition)}**{known}{either} "
            f'Yes → **{level.label}** <span class="drillbook-muted">({response})</span>.'
        )
    by_status = [
        f"**{policy.level(name).label}** for a {status} result" for status, name in policy.otherwise.items()
    ]
    fallback = ", ".join(by_status) or f"**{policy.levels[-1].label}**"
    items.append(f"1. None of the above, but something is wrong → {fallback}: judge the impact.")
    return "\n" + "\n".join(items) + "\n"


def policy_data(policy: SeverityPolicy) -> dict[str, Any]:
    """The severity policy as plain data for the page's scripts (durations in seconds)."""
    return {
        "levels": [
            {
                "id": level.id,
                "aliases": list(level.aliases),
                "label": level.label,
                "name": level.name,
                "definition": level.definition,
                "paging": level.paging,
                "page": level.page,
                "acknowledge_within": duration(level.acknowledge_within),
                "resolve_within": duration(level.resolve_within),
                "update_every": duration(level.update_every),
                "update_every_s": int(level.update_every.total_seconds()),
            }
            for level in policy.levels
        ]
    }


def render_policy_data(policy: SeverityPolicy) -> str:
    return json_script(POLICY_DATA_ID, policy_data(policy))


# --------------------------------------------------------------------------- escalation


def _after(step: Any) -> str:
    return "at once" if step.after == timedelta(0) else duration(step.after)


def _names(contacts: tuple[Any, ...]) -> str:
    return ", ".join(escape(contact.name) for contact in contacts)


def render_escalation_table(
    severity: SeverityPolicy, escalation: EscalationPolicy, level: str | None = None
) -> str:
    """The escalation ladders, one row per step; only `level`'s ladder when given."""
    levels = severity.levels if level is None else (severity.level(level),)
    header = ["After", "Page", "Notify"]
    if level is None:
        header.insert(0, "Severity")
    rows: list[list[str]] = []
    for entry in levels:
        steps = escalation.ladders.get(entry.id, ())
        if not steps:
            cells = ["—", f"no ladder for {entry.id} in {escalation.source.name}", "—"]
            rows.append([entry.label, *cells] if level is None else cells)
            continue
        for index, step in enumerate(steps):
            cells = [_after(step), _names(step.page) or "—", _names(step.notify) or "—"]
            if level is None:
                cells.insert(0, f"**{entry.label}**" if index == 0 else "")
            rows.append(cells)
    return table(header, rows)


def render_escalation_by_elapsed(severity: SeverityPolicy, escalation: EscalationPolicy) -> str:
    """One row per point in time since the incident was declared, one column per level."""
    times = sorted({step.after for steps in escalation.ladders.values() for step in steps})
    header = ["Elapsed", *(level.label for level in severity.levels)]
    rows = []
    for moment in times:
        cells = ["at once" if moment == timedelta(0) else duration(moment)]
        for level in severity.levels:
            step = next((s for s in escalation.ladders.get(level.id, ()) if s.after == moment), None)
            parts = []
            if step is not None and step.page:
                parts.append(f"page {_names(step.page)}")
            if step is not None and step.notify:
                parts.append(f"notify {_names(step.notify)}")
            cells.append("; ".join(parts) or "·")
        rows.append(cells)
    return table(header, rows, attrs='class="drillbook-escalation-elapsed"')


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;")


def escalation_mermaid(level: Level, steps: tuple[Any, ...]) -> str:
    """The ladder of one level as Mermaid flowchart source."""
    lines = ["flowchart TD", f'  start(["{_mermaid_label(level.label)} declared"])']
    previous = "start"
    for index, step in enumerate(steps):
        node = f"s{index}"
        parts = []
        if step.page:
            parts.append("page " + ", ".join(c.name for c in step.page))
        if step.notify:
            parts.append("notify " + ", ".join(c.name for c in step.notify))
        label = f"{_after(step)}: " + "<br/>".join(parts)
        lines.append(f'  {previous} --> {node}["{_mermaid_label(label)}"]')
        previous = node
    return "\n".join(lines)


def render_escalation_ladders(severity: SeverityPolicy, escalation: EscalationPolicy) -> str:
    """Each level's ladder as a Mermaid diagram (drawn in the browser from a local copy of Mermaid),
    side by side where the column is wide enough: a picture of every level in one screen.

    The source stays readable as text when Mermaid is not bundled with this build;
    the table by elapsed time on the same page says the same thing.
    """
    figures = []
    for level in severity.levels:
        steps = escalation.ladders.get(level.id, ())
        if not steps:
            continue
        source = html.escape(escalation_mermaid(level, steps))
        figures.append(
            f'<figure class="drillbook-ladder-figure">'
            f"<figcaption>{html.escape(level.label)}</figcaption>"
            f'<pre class="drillbook-mermaid" data-level="{level.id}"><code>{source}</code></pre>'
            "</figure>"
        )
    return '\n\n<div class="drillbook-ladders">\n' + "\n".join(figures) + "\n</div>\n\n"


def render_escalation_contact(escalation: EscalationPolicy, key: str) -> str:
    """One contact by its key, inline: its name, then how to reach it, in order."""
    contact = escalation.contacts.get(key)
    if contact is None:
        known = ", ".join(escalation.contacts)
        raise SiteError(f"escalation_contact: no contact {key!r} in {escalation.source}; it has {known}")
    ways = "; ".join(f"{means} `{address}`" for means, address in contact.reach)
    return f"**{escape(contact.name)}** ({ways})"


def render_escalation_contacts(escalation: EscalationPolicy) -> str:
    """The contacts of the escalation policy and how each is reached."""
    rows = [
        (escape(c.name), c.kind, "<br>".join(f"{means}: `{escape(address)}`" for means, address in c.reach))
        for c in escalation.contacts.values()
    ]
    return table(("Contact", "Kind", "How to reach, in order"), rows)
