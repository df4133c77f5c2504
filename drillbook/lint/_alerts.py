"""Alerts ↔ runbooks: every alert has a runbook, every runbook alert exists, every runbook_url lands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from checks import CheckError, SeverityPolicy
from drillbook.lint import _yaml
from drillbook.lint._model import Sink, listing
from drillbook.lint._pages import Page
from drillbook.project import DEFAULT_ALERT_RULES, PYPROJECT, read_table


@dataclass(frozen=True, slots=True)
class Alert:
    """An alerting rule of a Prometheus rule file."""

    name: str
    path: Path
    line: int
    runbook_url: str | None
    runbook_url_line: int
    severity: str | None
    severity_line: int
    expr: str = ""
    # The severity policy's trigger this alert watches (annotations.trigger): a measured one,
    # such as error_ratio_above, or a condition, such as credential_leak.
    trigger: str | None = None
    trigger_line: int = 1
    summary: str = ""
    summary_line: int = 1


@dataclass(frozen=True, slots=True)
class Rules:
    """The alerts of the configured rule files; `complete` is False when one of them could not be read."""

    alerts: tuple[Alert, ...]
    files: tuple[Path, ...]
    complete: bool
    # Runbooks acknowledged as not written yet ([tool.drillbook] runbooks_pending): their
    # alerts are warned about, not failed on, until the page exists.
    pending: frozenset[str] = frozenset()
    pending_line: int = 1

    def names(self) -> set[str]:
        return {alert.name for alert in self.alerts}


def _config_line(text: str, needle: str, fallback: int = 1) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return fallback


def load_rules(root: Path, sink: Sink) -> Rules:
    """Read `[tool.drillbook] alert_rules` from pyproject.toml, then every rule file it names."""
    pyproject = root / PYPROJECT
    try:
        found, text = read_table(root)  # the one reader of [tool.drillbook]
    except CheckError as exc:
        sink.error(pyproject, 1, str(exc).removeprefix(f"{pyproject}: "))
        return Rules((), (), complete=False)
    table: Any = found or {}
    configured = isinstance(table, dict) and "alert_rules" in table
    value = table["alert_rules"] if configured else list(DEFAULT_ALERT_RULES)
    setting_line = _config_line(text, "alert_rules") if configured else 1
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        sink.error(pyproject, setting_line, "[tool.drillbook] alert_rules must be a list of paths")
        return Rules((), (), complete=False)
    pending_value = table.get("runbooks_pending", []) if isinstance(table, dict) else []
    pending_line = _config_line(text, "runbooks_pending")
    if not isinstance(pending_value, list) or not all(isinstance(item, str) for item in pending_value):
        sink.error(
            pyproject, pending_line, "[tool.drillbook] runbooks_pending must be a list of runbook slugs"
        )
        pending_value = []
    alerts: list[Alert] = []
    files: list[Path] = []
    complete = True
    for name in value:
        path = root / name
        if not path.is_file():
            origin = (
                "[tool.drillbook] alert_rules names it"
                if configured
                else "it is the default of [tool.drillbook] alert_rules, which pyproject.toml does not set"
            )
            sink.error(
                pyproject,
                _config_line(text, name, setting_line),
                f"the alert rule file {name} does not exist ({origin}); "
                "list the rule files Prometheus loads, or [] for none",
            )
            complete = False
            continue
        files.append(path)
        read = _read_rule_file(path, sink)
        if read is None:
            complete = False
        else:
            alerts += read
    return Rules(tuple(alerts), tuple(files), complete, frozenset(pending_value), pending_line)


def _read_rule_file(path: Path, sink: Sink) -> list[Alert] | None:
    try:
        document = _yaml.read(path)
    except _yaml.YamlError as exc:
        sink.error(path, exc.line, str(exc))
        return None
    groups = document.data.get("groups") if isinstance(document.data, dict) else None
    if not isinstance(groups, list):
        sink.error(path, 1, "not a Prometheus rule file: expected `groups:`, a list of rule groups")
        return None
    alerts = []
    for g, group in enumerate(groups):
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list):
            sink.error(path, document.line("groups", g), "a rule group needs `rules:`, a list of rules")
            continue
        for r, rule in enumerate(rules):
            if not isinstance(rule, dict) or "alert" not in rule:
                continue  # a recording rule
            labels = rule.get("labels")
            annotations = rule.get("annotations")
            labels = labels if isinstance(labels, dict) else {}
            annotations = annotations if isinstance(annotations, dict) else {}
            url, severity = annotations.get("runbook_url"), labels.get("severity")
            at = ("groups", g, "rules", r)
            alerts.append(
                Alert(
                    name=str(rule["alert"]),
                    path=path,
                    line=document.line(*at, "alert"),
                    runbook_url=str(url) if url is not None else None,
                    runbook_url_line=document.line(*at, "annotations", "runbook_url"),
                    severity=str(severity) if severity is not None else None,
                    severity_line=document.line(*at, "labels", "severity"),
                    expr=str(rule.get("expr", "")),
                    trigger=str(annotations["trigger"]) if "trigger" in annotations else None,
                    trigger_line=document.line(*at, "annotations", "trigger"),
                    summary=str(annotations.get("summary", "")),
                    summary_line=document.line(*at, "annotations", "summary"),
                )
            )
    return alerts


def load_site_url(root: Path, sink: Sink, *, needed: bool) -> str | None:
    """mkdocs.yml's `site_url` (ending in '/'), or None; reported as an error only when `needed`."""
    path = root / "mkdocs.yml"
    if not path.is_file():
        if needed:
            sink.error(path, 1, "mkdocs.yml does not exist: no runbook_url can be checked against site_url")
        return None
    try:
        document = _yaml.read(path)
    except _yaml.YamlError as exc:
        sink.error(path, exc.line, str(exc))
        return None
    url = document.data.get("site_url") if isinstance(document.data, dict) else None
    if not isinstance(url, str) or not url.strip():
        if needed:
            sink.error(
                path,
                1,
                "mkdocs.yml has no site_url: alerts' runbook_url cannot be checked; "
                "set it to the address the site is published at",
            )
        return None
    return url.strip().rstrip("/") + "/"


def _page_of(url: str, site_url: str, docs: Path) -> Path | None:
    """The docs/ page a URL of the site serves (directory URLs or .html), or None."""
    relative = urlsplit(url[len(site_url) :]).path.strip("/")
    if relative.endswith(".html"):
        relative = relative.removesuffix(".html").removesuffix("index").rstrip("/")
    candidates = (
        [docs / "index.md"] if not relative else [docs / f"{relative}.md", docs / relative / "index.md"]
    )
    return next((c for c in candidates if c.is_file()), None)


def _slug_of(url: str | None, site_url: str | None, name: str) -> str:
    if url and site_url and url.startswith(site_url):
        parts = urlsplit(url[len(site_url) :]).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "runbooks" and parts[1]:
            return parts[1].removesuffix(".html")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def _same_level_as_runbooks(
    alert: Alert, level: str, owners: list[Page], policy: SeverityPolicy, sink: Sink
) -> None:
    """An alert pages at the level of the runbook it sends the on-call to: one incident, one level."""
    for page in owners:
        stated = page.data.get("severity")
        try:
            runbook_level = policy.level(str(stated)).id
        except CheckError:
            continue  # check_severity names the page's unknown level
        if runbook_level != level:
            sink.error(
                alert.path,
                alert.severity_line,
                f"alert {alert.name} is labelled {alert.severity}, but its runbook "
                f"docs/runbooks/{page.slug}.md says severity {stated}: give both the same level",
            )


def check_alerts(
    root: Path,
    pages: list[Page],
    rules: Rules,
    site_url: str | None,
    policy: SeverityPolicy | None,
    sink: Sink,
) -> None:
    """Coverage in both directions, runbook_url targets, severity labels."""
    docs = root / "docs"
    listed: dict[str, list[Page]] = {}
    for page in pages:
        for name, _ in page.names("alerts"):
            listed.setdefault(name, []).append(page)

    for alert in rules.alerts:
        owners = listed.get(alert.name, [])
        if not owners:
            slug = _slug_of(alert.runbook_url, site_url, alert.name)
            page_path = docs / "runbooks" / f"{slug}.md"
            advice = (
                f"add {alert.name} to the alerts of docs/runbooks/{slug}.md"
                if page_path.is_file()
                else f"write docs/runbooks/{slug}.md"
            )
            if slug in rules.pending and not page_path.is_file():
                sink.warning(
                    alert.path,
                    alert.line,
                    f"alert {alert.name} has no runbook yet: {advice} "
                    "(pending in [tool.drillbook] runbooks_pending)",
                )
            else:
                sink.error(alert.path, alert.line, f"alert {alert.name} has no runbook: {advice}")
        if policy is not None:
            if alert.severity is None:
                sink.error(
                    alert.path,
                    alert.line,
                    f"alert {alert.name} has no severity label: add labels.severity, a level of "
                    "policy/severity.yml",
                )
            else:
                try:
                    level = policy.level(alert.severity)
                except CheckError:
                    levels = listing(level.label for level in policy.levels)
                    sink.error(
                        alert.path,
                        alert.severity_line,
                        f"alert {alert.name}: severity {alert.severity!r} is not a level of "
                        f"policy/severity.yml (levels: {levels})",
                    )
                else:
                    _same_level_as_runbooks(alert, level.id, owners, policy, sink)
        if site_url is None:
            continue
        if alert.runbook_url is None:
            slug = owners[0].slug if owners else _slug_of(None, None, alert.name)
            sink.error(
                alert.path,
                alert.line,
                f"alert {alert.name} has no runbook_url annotation: add "
                f"runbook_url: {site_url}runbooks/{slug}/",
            )
            continue
        if not alert.runbook_url.startswith(site_url):
            sink.error(
                alert.path,
                alert.runbook_url_line,
                f"alert {alert.name}: runbook_url {alert.runbook_url} is not on the site "
                f"(site_url in mkdocs.yml is {site_url})",
            )
            continue
        target = _page_of(alert.runbook_url, site_url, docs)
        if target is None and not owners:
            continue  # "has no runbook: write docs/runbooks/<slug>.md" names the page it points at
        if target is None:
            slug = _slug_of(alert.runbook_url, site_url, alert.name)
            sink.error(
                alert.path,
                alert.runbook_url_line,
                f"alert {alert.name}: runbook_url {alert.runbook_url} points at no page of the site "
                f"(docs/runbooks/{slug}.md does not exist)",
            )
        elif owners and all(target.resolve() != page.path.resolve() for page in owners):
            sink.error(
                alert.path,
                alert.runbook_url_line,
                f"alert {alert.name}: runbook_url points at {sink.where(target)}, but the runbook listing "
                f"{alert.name} is {listing(sink.where(page.path) for page in owners)}",
            )

    for slug in sorted(rules.pending):
        if (docs / "runbooks" / f"{slug}.md").is_file():
            sink.error(
                root / "pyproject.toml",
                rules.pending_line,
                f"runbook {slug} is written: remove it from [tool.drillbook] runbooks_pending",
            )

    if not rules.complete:
        return  # an unreadable rule file is reported already; unknown alerts would only repeat it
    known = rules.names()
    files = listing(sink.where(path) for path in rules.files)
    for page in pages:
        for name, line in page.names("alerts"):
            if name not in known:
                sink.error(
                    page.path,
                    line,
                    f"alert {name!r} is not defined in the alert rule files ({files})",
                )
