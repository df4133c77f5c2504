"""The alerts page: every alert rule of the Prometheus rule files, checked against the runbook pages.

A rule's `runbook_url` must be an http(s) URL whose path is the site's path followed by
`runbooks/<slug>/`. Any other URL fails the build, naming the alert and the URL. Only
the path is compared: `mkdocs serve` replaces `site_url` with its own address, and the
page must build the same wherever it is served. That the URL's host is the published
site's is `drillbook lint`'s to check, against `site_url` as mkdocs.yml writes it.

A well-formed URL whose page is not written yet is listed as such and reported as a
warning on stderr; it does not fail `mkdocs build --strict` (the linter decides whether
that is an error).
"""

from __future__ import annotations

import html
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ._common import SiteError, escape, table
from ._runbooks import breakable

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


def _warnings_logger() -> logging.Logger:
    """Warnings that must show in a build without failing `--strict`.

    mkdocs counts every warning of its own `mkdocs` logger as a reason to fail a
    strict build, so these go to a logger of their own that prints like mkdocs does.
    """
    logger = logging.getLogger("drillbook.site")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-7s -  [drillbook] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


log = _warnings_logger()


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One `alert:` rule of a Prometheus rule file."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str
    runbook_url: str
    group: str
    source: Path


@dataclass(frozen=True, slots=True)
class AlertLink:
    """Where an alert's `runbook_url` leads: a runbook page, or a page not written yet."""

    rule: AlertRule
    slug: str | None
    written: bool


def read_alert_rules(files: Iterable[Path]) -> tuple[AlertRule, ...]:
    """Every alerting rule of the rule files that exist, in file order; recording rules are skipped."""
    rules: list[AlertRule] = []
    for path in files:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SiteError(f"{path}: not valid YAML: {exc}") from exc
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise SiteError(f"{path}: a Prometheus rule file has a top-level 'groups' list")
        for group in groups:
            for rule in group.get("rules", []) if isinstance(group, dict) else []:
                if not isinstance(rule, dict) or "alert" not in rule:
                    continue
                labels: dict[str, Any] = rule.get("labels") or {}
                annotations: dict[str, Any] = rule.get("annotations") or {}
                rules.append(
                    AlertRule(
                        name=str(rule["alert"]),
                        expr=str(rule.get("expr", "")).strip(),
                        duration=str(rule.get("for", "")),
                        severity=str(labels.get("severity", "")),
                        summary=str(annotations.get("summary", "")),
                        description=str(annotations.get("description", "")),
                        runbook_url=str(annotations.get("runbook_url", "")),
                        group=str(group.get("name", "")),
                        source=path,
                    )
                )
    return tuple(rules)


def _runbook_slug(url: str, prefix: str) -> str:
    """The slug of an absolute http(s) URL whose path is `<prefix><slug>/`, else ''."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    path = parts.path
    slug = path[len(prefix) : -1] if path.startswith(prefix) and path.endswith("/") else ""
    return slug if _SLUG.fullmatch(slug) else ""


def link_alerts(rules: Sequence[AlertRule], site_url: str, slugs: Iterable[str]) -> tuple[AlertLink, ...]:
    """Resolve every rule's `runbook_url` to a runbook slug; raise naming every malformed URL."""
    prefix = urlsplit(site_url).path.rstrip("/") + "/runbooks/"
    known = set(slugs)
    links, errors = [], []
    for rule in rules:
        url = rule.runbook_url
        slug = _runbook_slug(url, prefix)
        if not slug:
            errors.append(
                f"alert {rule.name} ({rule.source}): runbook_url {url or '(none)'!r} is not "
                f"https://<the published site>{prefix}<slug>/"
            )
            continue
        links.append(AlertLink(rule=rule, slug=slug, written=slug in known))
    if errors:
        raise SiteError("alert rules link outside this site's runbooks:\n  " + "\n  ".join(errors))
    for link in links:
        if not link.written:
            log.warning(
                "alert %s: its runbook_url %s leads to a runbook not written yet (docs/runbooks/%s.md)",
                link.rule.name,
                link.rule.runbook_url,
                link.slug,
            )
    return tuple(links)


def _code(text: str) -> str:
    return "<code>" + html.escape(" ".join(text.split())).replace("|", "&#124;") + "</code>"


def render_alerts_table(
    links: Sequence[AlertLink],
    *,
    link_from: str = "alerts.md",
    titles: Mapping[str, str] | None = None,
) -> str:
    """Every alert with the runbook it leads to (its name is that link too), its severity, its
    `for:` and its expression; `titles` names the runbooks by slug."""
    if not links:
        return "\n*No alert rules configured: this build found no rule file.*\n"
    depth = link_from.count("/")
    up = "../" * depth
    titles = titles or {}
    rows = []
    for link in links:
        rule = link.rule
        anchor = f'<span id="alert-{html.escape(rule.name)}"></span>'
        name = breakable(escape(rule.name))
        summary = f'<br><span class="drillbook-muted">{escape(rule.summary)}</span>' if rule.summary else ""
        if link.written:
            target = f"{up}runbooks/{link.slug}.md"
            alert = f"{anchor}[**{name}**]({target}){summary}"
            runbook = f"[{escape(titles.get(str(link.slug), str(link.slug)))}]({target})"
        else:
            alert = f"{anchor}**{name}**{summary}"
            runbook = f'<span class="drillbook-missing">runbook not written yet ({link.slug})</span>'
        rows.append(
            (
                alert,
                runbook,
                escape(rule.severity) or "—",
                escape(rule.duration) or "—",
                _code(rule.expr),
            )
        )
    header = ("Alert", "Runbook", "Severity", "For", "Expression")
    return table(header, rows, attrs='class="drillbook-alerts"')
