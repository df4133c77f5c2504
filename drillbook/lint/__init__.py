"""`drillbook lint`: the repository defends its runbooks.

    report = run(Path("."))            # or run() from anywhere inside the repository
    for finding in report.findings:
        print(finding)                 # docs/runbooks/x.md:3: error: severity 'SEV9' is not a level ...
    report.ok                          # False when any finding is an error

What it checks, each against the files that hold the facts:

- front matter of docs/runbooks/*.md against drillbook/schemas/runbook.schema.json,
  and its severity against policy/severity.yml;
- the fixed sections of a page, Diagnosis and Mitigation rendered from the notebook;
- page ↔ notebook pairing (docs/runbooks/<slug>.md ↔ notebooks/<slug>.py);
- alerts ↔ runbooks in both directions, for the rule files named by
  `[tool.drillbook] alert_rules` in pyproject.toml, and every alert's
  `runbook_url` pointing at a page of the site (mkdocs.yml `site_url`);
- faults: each one a runbook lists is in the fault catalogue and has a drill in the
  drill tests (a test naming it as a string literal): `[tool.drillbook] faults` and
  `drills`, by default sandbox/faults.yml and tests/drills;
- review dates: a warning when a review falls due, an error when a runbook
  whose severity pages someone is overdue;
- numbers written twice (see `drillbook.lint._numbers`): an alert's severity label
  against the level the policy gives where it fires, the numbers of its summary
  against its expression, numbers in the policy's prose, and checks' threshold
  defaults against the policy's triggers;
- notebook hygiene (see `drillbook.lint._notebooks`);
- docs/templates/*.md use only the `[[placeholders]]` of docs/templates/placeholders.yml.

Files that other parts of the repository provide may be missing: each check
says what it needs, and a missing input that nothing needs is no error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from checks import CheckError, policy_dir
from drillbook.lint._alerts import check_alerts, load_rules, load_site_url
from drillbook.lint._faults import check_faults
from drillbook.lint._model import Finding, Level, Report, Sink
from drillbook.lint._notebooks import check_notebooks
from drillbook.lint._numbers import (
    check_alert_levels,
    check_alert_summaries,
    check_page_numbers,
    check_policy_prose,
    check_threshold_defaults,
)
from drillbook.lint._pages import (
    check_body,
    check_front_matter,
    check_needs,
    check_reviews,
    check_severity,
    load_policy,
    read_pages,
)
from drillbook.lint._secrets import check_secrets
from drillbook.lint._templates import check_templates

__all__ = ["Finding", "Level", "Report", "main", "run"]


def run(root: Path | None = None, *, today: date | None = None) -> Report:
    """Lint the runbook repository at `root` (default: the folder that holds policy/).

    `today` is the date review deadlines are measured against (default: today).
    """
    root = root if root is not None else policy_dir().parent
    sink = Sink(root=root, today=today or date.today())
    pages = read_pages(root / "docs" / "runbooks", sink)
    check_front_matter(pages, sink)
    check_needs(pages, sink)
    policy = load_policy(root, sink)
    if policy is not None:
        check_severity(pages, policy, sink)
    check_reviews(pages, policy, sink)
    check_body(pages, sink)
    check_notebooks(root, pages, sink)
    rules = load_rules(root, sink)
    site_url = load_site_url(root, sink, needed=bool(rules.alerts))
    check_alerts(root, pages, rules, site_url, policy, sink)
    check_alert_summaries(rules, sink)
    if policy is not None:
        check_alert_levels(rules, policy, sink)
        check_page_numbers(pages, rules, policy, sink)
        check_policy_prose(root, policy, sink)
        check_threshold_defaults(policy, sink)
    check_faults(root, pages, rules, sink)
    check_templates(root, sink)
    pages_published = [p for p in sorted((root / "docs").rglob("*.md")) if "overrides" not in p.parts]
    check_secrets([*sorted((root / "notebooks").glob("*.py")), *pages_published], sink)
    return sink.report(runbooks=len(pages))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drillbook lint",
        description="Check runbooks, notebooks, alerts, faults and templates; exit 1 on any error.",
    )
    parser.add_argument("--root", type=Path, help="the repository (default: the folder holding policy/)")
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        help="measure review dates against this day, YYYY-MM-DD (default: today)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print every finding as `path:line: level: message`, then a summary; 0 without errors, else 1."""
    args = _parser().parse_args(argv)
    try:
        report = run(args.root, today=args.today)
    except CheckError as exc:
        print(f"drillbook lint: error: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
