"""A runbook page's summary, its step numbers and its status marks, rendered without a browser."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from checks import format_duration, load_severity
from drillbook.site import (
    DrillResult,
    SummaryLinks,
    Verification,
    incident_environment,
    read_runbook_pages,
    render_runbook_summary,
)
from drillbook.site._runbooks import Dashboard, render_badge, render_runbook_steps, status_marks
from tests.docs.test_site import REPO

POLICY = load_severity(REPO / "policy" / "severity.yml")
PAGE = next(p for p in read_runbook_pages(REPO / "docs" / "runbooks") if p.slug == "database-connections")
LINKS = SummaryLinks(
    alerts="../../alerts/", severity="../../severity/", known_alerts=frozenset({"PostgresLockContention"})
)
RUN = Verification(
    at=datetime(2026, 11, 22, 8, 8, tzinfo=UTC), status="ok", environment="sandbox", duration_s=4.0
)
PASSED = DrillResult(fault="db-pool-exhausted", passed=True, duration_s=4.8, finished_at=None)
FAILED = DrillResult(fault="db-lock-contention", passed=False, duration_s=9.1, finished_at=None)


def summary(**changes: object) -> str:
    arguments: dict[str, object] = {
        "environment": "production",
        "links": LINKS,
        "verification": RUN,
        "drills": [PASSED],
        "today": date(2026, 12, 1),
    }
    arguments.update(changes)
    return render_runbook_summary(PAGE, POLICY, **arguments)  # type: ignore[arg-type]


def test_the_summary_says_what_a_responder_needs_from_the_front_matter_and_the_policy() -> None:
    html = summary()
    level = POLICY.level(PAGE.severity)
    assert level.label in html
    assert f"acknowledge within {format_duration(level.acknowledge_within)}" in html
    assert PAGE.owner in html
    assert "api, postgres" in html
    assert ">drillbook run database-connections --env production</code>" in html
    assert '<a href="../../alerts/#alert-PostgresLockContention">' in html
    assert "<code>PostgresConnectionsHigh</code>" in html, "an alert the rules lack is shown, not linked"
    assert "alert-PostgresConnectionsHigh" not in html
    for symptom in PAGE.symptoms:
        assert symptom in html
    assert "Passed</strong> 2026-11-22 08:08 UTC: notebook run against the sandbox, passed" in html
    assert "Current until 2027-02-20" in html


def test_a_failed_drill_or_run_is_never_shown_as_passed() -> None:
    assert "drillbook-state--failed" in summary(drills=[PASSED, FAILED])
    assert "Passed" not in summary(drills=[PASSED, FAILED])
    failed_run = replace(RUN, status="failed")
    assert "did not pass (failed)" in summary(verification=failed_run)
    assert "Unverified" in summary(verification=None, drills=[])


def test_review_status_and_dashboards_come_from_the_front_matter() -> None:
    assert "Overdue since 2027-02-20" in summary(today=date(2027, 3, 1))
    page = replace(
        PAGE, dashboards=(Dashboard("Postgres overview", "https://grafana.example.internal/d/pg"),)
    )
    html = render_runbook_summary(
        page,
        POLICY,
        environment="production",
        links=LINKS,
        verification=RUN,
        drills=(),
        today=date(2026, 12, 1),
    )
    assert '<a href="https://grafana.example.internal/d/pg">Postgres overview</a>' in html


def test_the_incident_environment_is_the_one_that_asks_for_a_confirmation() -> None:
    assert (
        incident_environment({"sandbox": {"gate": "apply"}, "live": {"gate": "confirm"}, "lab": {}}) == "live"
    )
    assert incident_environment({"sandbox": {"gate": "apply"}, "staging": {"gate": "apply"}}) == "staging"


def test_steps_continue_their_numbers_from_where_the_page_left_off() -> None:
    notebook = REPO / "notebooks" / "database-connections.py"
    markdown = render_runbook_steps(notebook, None, "mitigation", badge=False, first_step=9)
    numbers = [int(n) for n in re.findall(r"\*\*Step (\d+)\.\*\*", markdown)]
    assert numbers
    assert numbers == list(range(9, 9 + len(numbers)))


def test_status_emoji_become_drawn_marks_and_the_word_stays() -> None:
    text = status_marks("\U0001f534 **health**: CRIT. down\n\n\U0001f7e2 **pool**: OK.")
    assert "\U0001f534" not in text
    assert "\U0001f7e2" not in text
    assert 'class="drillbook-mark drillbook-mark--crit"' in text
    assert "CRIT" in text
    assert 'class="drillbook-mark drillbook-mark--ok"' in text


def test_a_built_runbook_page_numbers_its_steps_once_and_opens_with_its_summary(tmp_path: Path) -> None:
    from tests.docs.test_site import built, copy_project, mkdocs_build

    project = copy_project(tmp_path / "project")
    site = built(mkdocs_build(project, tmp_path / "site"), tmp_path / "site")
    html = (site / "runbooks" / "database-connections" / "index.html").read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r"<strong>Step (\d+)\.</strong>", html)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 8
    assert re.search(r"</h1>\s*<section class=\"drillbook-summary\"", html)
    assert not re.search("[\U0001f7e2\U0001f534\U0001f7e1]", html)


def test_a_failed_drill_makes_the_badge_a_failure_that_never_says_verified() -> None:
    badge = render_badge(RUN, [PASSED, FAILED])
    assert badge.startswith('!!! failure "Not verified: drill failed: fault db-lock-contention;')
    assert "Verified against" not in badge
    assert render_badge(RUN, [PASSED]).startswith('!!! success "Verified against the sandbox on 2026-11-22')


def test_what_a_runbook_needs_is_listed_and_leads_to_the_signals_page() -> None:
    page = replace(PAGE, needs=("reference-admin", "requests"))
    html = render_runbook_summary(
        page,
        POLICY,
        environment="production",
        links=replace(LINKS, signals="../../signals/"),
        verification=RUN,
        drills=(),
        today=date(2026, 12, 1),
    )
    assert '<a href="../../signals/"><code>reference-admin</code></a>' in html
    assert "<code>requests</code>" in html
    assert "not applicable there" in html
