"""The site's macros: policy tables, templates, the runbook catalogue, alerts and runbook steps.

mkdocs-macros loads this module (`modules: [drillbook.site]` in mkdocs.yml) and calls
`define_env` and `on_post_build` once per build. Pages opt in to rendering with
`render_macros: true` in their front matter (runbooks quote Prometheus templates
such as `{{ $labels.instance }}` that Jinja must not touch). The macros:

- `severity_matrix()`, `severity_decision()`, `severity_target(level, field)`;
- `escalation_table(level=None)`, `escalation_by_elapsed()`, `escalation_ladders()`,
  `escalation_contacts()`;
- `template_form()`, `placeholder_table()`: the templates page and its form;
- `runbook_catalogue()`, `alert_rules()`;
- `print_runbooks()`: contents, severity matrix, escalation, then every runbook,
  most severe first (`python -m drillbook.site.pdf` prints it with page numbers);
- `runbook_steps(slug, tag)`: the code cells of `notebooks/<slug>.py` tagged
  `tag`, each with its explanation and, when `build/executed/<slug>.ipynb`
  exists, the output of that run; steps are numbered once across a page; the
  first call on a page adds the badge (verified when, how the drills went) and
  each drill's evidence from `build/drills/<slug>--<fault>.ipynb`.

After the build, `on_post_build` writes `runbooks.json` at the site root. The
mkdocs-macros hooks `on_pre_page_macros` and `on_post_page_macros` expand pages
whose only template expressions are plain macro calls without compiling them as
Jinja (drillbook/site/_expand.py). The MkDocs plugin `drillbook`
(drillbook/site/plugin.py, under `plugins:` in mkdocs.yml) calls the events here:
`on_page_markdown` opens each runbook page with its summary (_summary.py);
`on_pre_build`, `on_page_content` and `on_post_page` fill the print page with the
runbook pages' own HTML (drillbook/site/_print.py); `on_config` has Material's
search index built in a second process, a runbook's front matter keywords on its
first entry (drillbook/site/_search.py). `python -m drillbook.site.bundle` zips the
offline site into one folder.

Every path resolves from the directory that holds mkdocs.yml, never from the
working directory; the policy files come from `$DRILLBOOK_POLICY_DIR` when it is
set. Anything a macro cannot render raises `SiteError` naming the file and what
it expected, and mkdocs-macros (`on_error_fail: true`) fails the build.

The `render_*` functions are plain functions of their inputs, usable and
testable without mkdocs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from material.plugins.search.plugin import SearchIndex
from mkdocs.utils import get_relative_url

from checks import CheckError, ConfigError, Targets, load_environments
from drillbook.project import Project

from ._alerts import AlertLink, AlertRule, link_alerts, read_alert_rules, render_alerts_table
from ._by_hand import BY_HAND_TITLE
from ._common import TODAY_VARIABLE, SiteError, SitePaths, today
from ._expand import expand_calls, protect_alert_templates
from ._policy import (
    POLICY_DATA_ID,
    SEVERITY_FIELDS,
    escalation_mermaid,
    policy_data,
    render_after_incident,
    render_escalation_by_elapsed,
    render_escalation_contact,
    render_escalation_contacts,
    render_escalation_ladders,
    render_escalation_table,
    render_policy_decisions,
    render_severity_decision,
    render_severity_matrix,
    render_severity_target,
)
from ._print import PrintAssembly, relocate, section_id
from ._print import placeholder as print_placeholder
from ._runbooks import (
    OUTPUT_TITLE,
    DrillEvidence,
    DrillResult,
    RunbookPage,
    Verification,
    by_severity,
    read_drill_evidence,
    read_drills,
    read_runbook_pages,
    read_verification,
    render_badge,
    render_runbook_catalogue,
    render_runbook_steps,
    runbook_index,
    tagged_cells,
)
from ._search import BackgroundSearchIndex
from ._signals import render_needs, render_signal_mappings, render_signals
from ._summary import SUMMARY_CLASS, SummaryLinks, incident_environment, render_runbook_summary, run_command
from ._templates import (
    PLACEHOLDER,
    Placeholder,
    check_placeholders,
    read_placeholders,
    render_placeholder_table,
    render_template_form,
)

__all__ = [
    "BY_HAND_TITLE",
    "INDEX_FILE",
    "OUTPUT_TITLE",
    "PLACEHOLDER",
    "POLICY_DATA_ID",
    "SEVERITY_FIELDS",
    "SUMMARY_CLASS",
    "TODAY_VARIABLE",
    "AlertLink",
    "AlertRule",
    "DrillEvidence",
    "DrillResult",
    "Placeholder",
    "RunbookPage",
    "SiteError",
    "SitePaths",
    "SummaryLinks",
    "Verification",
    "by_severity",
    "check_placeholders",
    "define_env",
    "escalation_mermaid",
    "incident_environment",
    "link_alerts",
    "on_config",
    "on_page_content",
    "on_page_markdown",
    "on_post_build",
    "on_post_page",
    "on_post_page_macros",
    "on_pre_build",
    "on_pre_page_macros",
    "policy_data",
    "read_alert_rules",
    "read_drill_evidence",
    "read_drills",
    "read_placeholders",
    "read_runbook_pages",
    "read_verification",
    "relocate",
    "render_alerts_table",
    "render_badge",
    "render_escalation_by_elapsed",
    "render_escalation_contacts",
    "render_escalation_ladders",
    "render_escalation_table",
    "render_runbook_catalogue",
    "render_runbook_steps",
    "render_runbook_summary",
    "render_severity_decision",
    "render_severity_matrix",
    "render_severity_target",
    "run_command",
    "runbook_index",
    "section_id",
]

INDEX_FILE = "runbooks.json"
"""The machine-readable runbook index at the site root."""

OFFLINE_VARIABLE = "DRILLBOOK_OFFLINE"
IFRAME_WORKER = "assets/vendor/iframe-worker/shim.js"
PRINT_SEVERITY = "print-severity"
PRINT_ESCALATION = "print-escalation"
"""The print page's anchors of the policy it includes (drillbook.site.pdf numbers them too)."""


class MacrosEnv(Protocol):
    """The part of mkdocs-macros' environment that `define_env` uses."""

    @property
    def conf(self) -> Mapping[str, Any]: ...

    @property
    def page(self) -> Any: ...

    @property
    def macros(self) -> Mapping[str, Callable[..., Any]]: ...

    markdown: str

    def macro(self, v: Callable[..., Any], name: str = "") -> Any: ...


def _settings(conf: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = conf.get("extra") or {}
    settings = extra.get("drillbook") if isinstance(extra, Mapping) else None
    return settings if isinstance(settings, Mapping) else {}


def _alert_rule_files(paths: SitePaths) -> list[Path]:
    """The project's alert rule files (`[tool.drillbook] alert_rules`, as lint reads them); a
    build fails on one that does not exist, as lint does."""
    try:
        return list(Project.at(paths.root).existing_alert_rules())
    except CheckError as exc:
        raise SiteError(str(exc)) from exc


def by_hand_targets(paths: SitePaths, conf: Mapping[str, Any]) -> Targets:
    """The environment whose names and endpoints the steps' by-hand folds show: mkdocs.yml's
    `extra.drillbook.by_hand_environment`, else the one an incident happens in (production, in
    the reference policy). Read from the policy alone: no secret, no running sandbox."""
    environments = paths.policy_file("environments.yml")
    name = _settings(conf).get("by_hand_environment") or incident_environment(load_environments(environments))
    try:
        return Targets.from_env(str(name), environments=environments, declared_only=True)
    except ConfigError as exc:
        raise SiteError(f"mkdocs.yml extra.drillbook.by_hand_environment: {exc}") from exc


def _offline(conf: Mapping[str, Any], paths: SitePaths) -> None:
    """The offline bundle loads iframe-worker (search from file://) from this site, never a CDN."""
    if os.environ.get(OFFLINE_VARIABLE, "").lower() not in ("1", "true", "yes"):
        return
    if not (paths.docs / IFRAME_WORKER).is_file():
        raise SiteError(
            f"an offline build needs {paths.docs / IFRAME_WORKER}; run `make vendor` "
            "(npm ci in docs/overrides/vendor) first, or Material would fetch it from a CDN"
        )
    extra = conf["extra"]
    polyfills = list(extra.get("polyfills") or [])
    if IFRAME_WORKER not in polyfills:
        polyfills.append(IFRAME_WORKER)
    extra["polyfills"] = polyfills


def define_env(env: MacrosEnv) -> None:
    """Register the macros; mkdocs-macros calls this once per build."""
    paths = SitePaths.from_config(env.conf)
    _offline(env.conf, paths)

    def src_path() -> str:
        page = env.page
        return page.file.src_path.replace(os.sep, "/") if page is not None else "index.md"

    def severity_matrix() -> str:
        return render_severity_matrix(paths.severity())

    def severity_decision() -> str:
        return render_severity_decision(paths.severity())

    def after_incident(key: str) -> str:
        return render_after_incident(paths.severity(), key)

    def policy_decisions() -> str:
        return render_policy_decisions(paths.severity())

    def severity_target(level: str, field: str) -> str:
        return render_severity_target(paths.severity(), level, field)

    def escalation_table(level: str | None = None) -> str:
        return render_escalation_table(paths.severity(), paths.escalation(), level)

    def escalation_by_elapsed() -> str:
        return render_escalation_by_elapsed(paths.severity(), paths.escalation())

    def escalation_ladders() -> str:
        return render_escalation_ladders(paths.severity(), paths.escalation())

    def escalation_contacts() -> str:
        return render_escalation_contacts(paths.escalation())

    def escalation_contact(key: str) -> str:
        return render_escalation_contact(paths.escalation(), key)

    def template_form() -> str:
        """The form, after checking every [[placeholder]] of this page is declared."""
        placeholders = read_placeholders(paths.placeholders)
        page = paths.docs / src_path()
        check_placeholders(page, page.read_text(encoding="utf-8"), placeholders)
        return render_template_form(placeholders, paths.severity())

    def placeholder_table() -> str:
        return render_placeholder_table(read_placeholders(paths.placeholders))

    def signals_table() -> str:
        return render_signals()

    def needs_table() -> str:
        return render_needs()

    def signal_mappings() -> str:
        return render_signal_mappings(load_environments(paths.policy_file("environments.yml")))

    def runbook_catalogue() -> str:
        """The catalogue, with links relative to the page it is on."""
        return render_runbook_catalogue(
            read_runbook_pages(paths.runbooks),
            paths.severity(),
            link_from=src_path(),
            today=today(),
            drills=read_drills(paths.drill_summary),
            known_alerts={rule.name for rule in read_alert_rules(_alert_rule_files(paths))},
        )

    def alert_rules() -> str:
        rules = read_alert_rules(_alert_rule_files(paths))
        titles = {page.slug: page.title for page in read_runbook_pages(paths.runbooks)}
        links = link_alerts(rules, str(env.conf.get("site_url") or ""), titles)
        return render_alerts_table(links, link_from=src_path(), titles=titles)

    manual_targets: list[Targets] = []
    """The by-hand environment's targets, read once per build at the first runbook page."""
    pages_with_badge: set[tuple[str, str]] = set()
    next_step: dict[str, int] = {}
    """The number the next step of each page gets: steps are numbered once across a page."""

    def runbook_steps(slug: str, tag: str) -> str:
        """The cells of notebooks/<slug>.py tagged `tag`, with the output of the last verified run."""
        notebook = paths.notebooks / f"{slug}.py"
        if not notebook.is_file():
            known = sorted(p.stem for p in paths.notebooks.glob("*.py"))
            raise SiteError(
                f"runbook_steps: no notebook {notebook} for the runbook {slug!r}; "
                f"the notebooks are: {', '.join(known) or '(none)'}"
            )
        key = (src_path(), slug)
        badge = key not in pages_with_badge
        pages_with_badge.add(key)
        drills = read_drills(paths.drill_summary).get(slug, ()) if badge else ()
        evidence = read_drill_evidence(paths.drill_summary.parent, slug, drills) if badge else ()
        if badge:  # the page's first steps
            next_step[src_path()] = 1
        first = next_step.get(src_path(), 1)
        if not manual_targets:
            manual_targets.append(by_hand_targets(paths, env.conf))
        markdown = render_runbook_steps(
            notebook,
            paths.executed / f"{slug}.ipynb",
            tag,
            badge=badge,
            drills=drills,
            first_step=first,
            evidence=evidence,
            by_hand=manual_targets[0],
        )
        next_step[src_path()] = first + len(tagged_cells(notebook, tag))
        return markdown

    def print_runbooks() -> str:
        """Every runbook, most severe first, after the severity matrix and the escalation ladders,
        for printing or saving as one PDF: the contents (with page numbers when `make print` gives
        them) and the policy here, the runbooks' own HTML after the build converts them
        (`on_post_page`)."""
        pages = by_severity(read_runbook_pages(paths.runbooks), paths.severity())
        if not pages:
            return "\n*No runbooks yet.*\n"
        entries = [
            (PRINT_SEVERITY, "Severity levels", ""),
            (PRINT_ESCALATION, "Escalation", ""),
            *((section_id(p.slug), p.title, label) for p, label in pages),
        ]
        contents = "\n".join(
            f'<li><a href="#{anchor}">'
            + (f'<span class="drillbook-toc-level">{label}</span>' if label else "")
            + f'{title}</a><span class="drillbook-toc-page" data-page-of="{anchor}"></span></li>'
            for anchor, title, label in entries
        )
        policy = (
            f"## Severity levels {{ #{PRINT_SEVERITY} }}\n\n{render_severity_matrix(paths.severity())}\n\n"
            f"## Escalation {{ #{PRINT_ESCALATION} }}\n\n"
            f"{render_escalation_table(paths.severity(), paths.escalation())}\n\n"
            f"{render_escalation_contacts(paths.escalation())}\n"
        )
        sections = "\n\n<hr>\n\n".join(print_placeholder(p.slug) for p, _ in pages)
        nav = f'<nav class="drillbook-print-contents" aria-label="Contents">\n<ol>\n{contents}\n</ol>\n</nav>'
        return f"\n{nav}\n\n{policy}\n<hr>\n\n{sections}\n"

    for macro in (
        severity_matrix,
        severity_decision,
        severity_target,
        after_incident,
        policy_decisions,
        escalation_table,
        escalation_by_elapsed,
        escalation_ladders,
        escalation_contacts,
        escalation_contact,
        template_form,
        placeholder_table,
        signals_table,
        signal_mappings,
        needs_table,
        runbook_catalogue,
        alert_rules,
        runbook_steps,
        print_runbooks,
    ):
        env.macro(macro, macro.__name__)


def on_config(config: Any) -> None:
    """mkdocs hook: Material's search index, its pages indexed by a second process (_search.py)."""
    plugin = config.plugins.get("material/search")
    if plugin is not None and type(getattr(plugin, "search_index", None)) is SearchIndex:
        plugin.search_index = BackgroundSearchIndex(**plugin.config)


_EXPANDED: set[str] = set()
"""Pages whose macros `on_pre_page_macros` expanded, until `on_post_page_macros` is called."""


def on_pre_page_macros(env: MacrosEnv) -> None:
    """mkdocs-macros hook: expand a page's plain macro calls without compiling it as Jinja.

    When every template expression of an opted-in page is a macro call with literal
    arguments (every runbook page), the calls are made here and the page is marked
    `render_macros: false` until `on_post_page_macros`, so that mkdocs-macros does
    not compile it. Any other page, or one whose macro fails, is left to
    mkdocs-macros, which renders it and reports errors as usual. Either way the alert
    templates a page quotes (`{{ $labels.instance }}`) come out as written.
    """
    page = env.page
    meta = page.meta
    if meta.get("render_macros") is not True:
        return
    try:
        expanded = None if "{" in str(page.title) else expand_calls(env.markdown, env.macros)
    except Exception:
        expanded = None  # mkdocs-macros renders the page again and reports the error as for any page
    if expanded is not None:
        env.markdown = expanded
        meta["render_macros"] = False
        _EXPANDED.add(page.file.src_uri)
    else:  # Jinja renders it: the alert templates it quotes must come out as written
        env.markdown = protect_alert_templates(env.markdown)


def on_post_page_macros(env: MacrosEnv) -> None:
    """mkdocs-macros hook: the page's front matter says again what its author wrote."""
    page = env.page
    if page.file.src_uri in _EXPANDED:
        _EXPANDED.discard(page.file.src_uri)
        page.meta["render_macros"] = True


def _runbook_slug(src_uri: str) -> str | None:
    """The slug of a runbook page (`runbooks/<slug>.md`, not the catalogue), else None."""
    folder, _, name = src_uri.rpartition("/")
    if folder != "runbooks" or not name.endswith(".md") or name == "index.md":
        return None
    return name.removesuffix(".md")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: a runbook page opens, under its title, with its summary (_summary.py)."""
    slug = _runbook_slug(page.file.src_uri)
    if slug is None:
        return markdown
    paths = SitePaths.from_config(config)
    runbook = next((p for p in read_runbook_pages(paths.runbooks) if p.slug == slug), None)
    if runbook is None:
        return markdown

    def link(src: str) -> str:
        target = files.get_file_from_path(src)
        if target is None:
            raise SiteError(f"the runbook summary links {src}, which this site does not have")
        return str(get_relative_url(target.url, page.url))

    summary = render_runbook_summary(
        runbook,
        paths.severity(),
        environment=incident_environment(load_environments(paths.policy_file("environments.yml"))),
        links=SummaryLinks(
            alerts=link("alerts.md"),
            severity=link("severity.md"),
            signals=link("signals.md"),
            known_alerts=frozenset(rule.name for rule in read_alert_rules(_alert_rule_files(paths))),
        ),
        verification=read_verification(paths.executed, slug),
        drills=read_drills(paths.drill_summary).get(slug, ()),
        today=today(),
    )
    lines = markdown.split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), -1)
    return "\n".join([*lines[: title + 1], summary, *lines[title + 1 :]])


_PRINT = PrintAssembly()
"""The runbook pages' HTML of the build under way, for the print page."""


def on_pre_build(config: Any) -> None:
    """mkdocs hook: a new build (`mkdocs serve` rebuilds) starts with no runbook kept."""
    _PRINT.reset()


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: keep each runbook page's HTML for the print page."""
    _PRINT.keep(page.file.src_uri, page.url, html)
    return html


def on_post_page(output: str, page: Any, config: Any) -> str:
    """mkdocs hook: the print page gets every runbook in place of its placeholder."""
    return _PRINT.fill(output, page.url)


def on_post_build(env: MacrosEnv) -> None:
    """Write runbooks.json at the site root: the runbook index for chat bots and alert templates."""
    conf = env.conf
    paths = SitePaths.from_config(conf)
    entries = runbook_index(
        read_runbook_pages(paths.runbooks),
        paths,
        site_url=str(conf.get("site_url") or ""),
        today=today(),
        use_directory_urls=bool(conf.get("use_directory_urls", True)),
    )
    document = {"site_url": conf.get("site_url"), "generated_on": today().isoformat(), "runbooks": entries}
    target = Path(conf["site_dir"]) / INDEX_FILE
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
