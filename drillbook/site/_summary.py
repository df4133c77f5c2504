"""The box a runbook page opens with: what a responder needs in the first ten seconds.

Everything in it comes from the runbook's front matter, the policy and this build's
verified run and drills: the severity and what it asks for, the owner, the alerts
that lead here (each to its rule on the alerts page), the services, the symptoms, the
one command to run, the dashboards, when the runbook was last verified and how, and
its review status. It is HTML with its links already resolved (the hook that inserts
it knows the page's URL and the alerts page's), so that it reads the same on the
page, in the print view and in the offline bundle.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from checks import SeverityPolicy

from ._common import duration
from ._runbooks import DrillResult, RunbookPage, Verification, drill_phrase, format_moment

SUMMARY_CLASS = "drillbook-summary"
"""The class of the summary's `<section>`; the browser tests and the print styles find it by it."""


@dataclass(frozen=True, slots=True)
class SummaryLinks:
    """Where the summary's links lead, relative to the runbook page: `alerts` ends before the
    `#alert-<name>` anchor; `severity` is the severity page; `known_alerts` are the alerts that
    page lists (an alert missing from the rule files is shown, not linked); `signals` is the
    page that says what each need is (none: needs are not linked)."""

    alerts: str
    severity: str
    known_alerts: frozenset[str] = frozenset()
    signals: str = ""


def incident_environment(environments: Mapping[str, Any]) -> str:
    """The environment an incident happens in: the last one whose gate asks for a confirmation
    (production, in the reference policy), else the last one listed."""
    names = list(environments)
    if not names:
        return "production"
    confirmed = [name for name in names if (environments[name] or {}).get("gate") == "confirm"]
    return (confirmed or names)[-1]


def run_command(slug: str, environment: str) -> str:
    """The one command that diagnoses the incident and plans its mitigations, changing nothing."""
    return f"drillbook run {slug} --env {environment}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _row(label: str, value: str, *, kind: str = "") -> str:
    extra = f" {SUMMARY_CLASS}__{kind}" if kind else ""
    return f'<div class="{SUMMARY_CLASS}__row{extra}"><dt>{_e(label)}</dt> <dd>{value}</dd></div>\n'


def _verified(verification: Verification | None, drills: Sequence[DrillResult]) -> tuple[str, str]:
    """The 'last verified' value and its state: `ok`, `failed` or `none`."""
    failed = any(not d.passed for d in drills)
    parts = []
    if verification is None:
        parts.append("not verified in this build")
        state = "failed" if failed else "none"
    else:
        env = verification.environment
        against = "the sandbox" if env == "sandbox" else f"the {env} environment"
        when = format_moment(verification.at) if verification.at else "date not recorded"
        verdict = "passed" if verification.passed else f"did not pass ({verification.status})"
        parts.append(f"{when}: notebook run against {against}, {verdict}")
        state = "ok" if verification.passed and not failed else "failed"
    if drills:
        parts.append(drill_phrase(drills))
    else:
        parts.append("no drill in this build")
    mark = {"ok": "Passed", "failed": "Failed", "none": "Unverified"}[state]
    value = f'<strong class="drillbook-state drillbook-state--{state}">{mark}</strong> ' + _e(
        "; ".join(parts)
    )
    return value, state


def _review(page: RunbookPage, today: date) -> str:
    due = page.review_due()
    reviewed = f"reviewed {page.last_reviewed.isoformat()}"
    if due is None:
        return _e(f"{reviewed}, no review period")
    status = page.review_status(today)
    words = {
        "overdue": f"Overdue since {due.isoformat()}",
        "due": f"Due by {due.isoformat()}",
        "ok": f"Current until {due.isoformat()}",
    }[status]
    return f'<strong class="drillbook-state drillbook-state--review-{status}">{_e(words)}</strong> ' + _e(
        f"({reviewed}, every {page.review_every_days} days)"
    )


def render_runbook_summary(
    page: RunbookPage,
    severity: SeverityPolicy,
    *,
    environment: str,
    links: SummaryLinks,
    verification: Verification | None,
    drills: Sequence[DrillResult],
    today: date,
) -> str:
    """The summary box of one runbook page, as HTML."""
    level = severity.level(page.severity)
    rows = [
        _row(
            "Severity",
            f'<a href="{_e(links.severity)}"><strong>{_e(level.label)}</strong></a> '
            + _e(
                f"{level.name}: acknowledge within {duration(level.acknowledge_within)}, "
                f"update every {duration(level.update_every)}, "
                f"{'page on-call' if level.page else 'no page'}"
            ),
            kind="severity",
        ),
        _row("Owner", _e(page.owner)),
        _row(
            "Alerts",
            ", ".join(
                f'<a href="{_e(links.alerts)}#alert-{_e(alert)}"><code>{_e(alert)}</code></a>'
                if alert in links.known_alerts
                else f"<code>{_e(alert)}</code>"
                for alert in page.alerts
            )
            + (
                '<br><span class="drillbook-muted">When one fires, <code>drillbook receive</code> runs the '
                "diagnosis by itself and posts the triage.</span>"
                if page.alerts
                else ""
            )
            or "none: run it by hand",
        ),
        _row("Services", _e(", ".join(page.services)) or "—"),
    ]
    command = run_command(page.slug, environment)
    rows.insert(
        1,
        _row(
            "Run first",
            f'<pre class="{SUMMARY_CLASS}__run"><code class="language-text">{_e(command)}</code></pre>'
            f'<span class="drillbook-muted">Diagnoses and plans the mitigations; it changes nothing '
            f"without <code>--apply</code>.</span>",
            kind="command",
        ),
    )
    if page.symptoms:
        items = " ".join(f"<li>{_e(symptom)}</li>" for symptom in page.symptoms)
        rows.append(_row("Symptoms", f'<ul class="{SUMMARY_CLASS}__symptoms">{items}</ul>'))
    if page.dashboards:
        rows.append(
            _row(
                "Dashboards",
                ", ".join(f'<a href="{_e(d.url)}">{_e(d.title)}</a>' for d in page.dashboards),
            )
        )
    if page.needs:
        needed = ", ".join(
            f'<a href="{_e(links.signals)}"><code>{_e(n)}</code></a>'
            if links.signals
            else f"<code>{_e(n)}</code>"
            for n in page.needs
        )
        rows.append(
            _row(
                "Needs",
                f'{needed}<br><span class="drillbook-muted">Where an environment lacks one, the steps '
                "that need it are not applicable there.</span>",
            )
        )
    verified, state = _verified(verification, drills)
    rows.append(_row("Last verified", verified, kind=f"verified-{state}"))
    rows.append(_row("Review", _review(page, today)))
    return (
        f'\n\n<section class="{SUMMARY_CLASS}" aria-label="Runbook summary">'
        f'<dl class="{SUMMARY_CLASS}__list">\n{"".join(rows)}</dl></section>\n\n'
    )
