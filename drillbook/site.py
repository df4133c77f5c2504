"""The site's macros: policy tables, the runbook catalogue and runbook steps, rendered at build time.

`docs/overrides/macros.py` re-exports `define_env`, which mkdocs-macros calls once
per build. Pages opt in to rendering with `render_macros: true` in their front
matter (runbooks quote Prometheus templates such as `{{ $labels.instance }}`
that Jinja must not touch). The macros:

- `severity_matrix()`: every level of policy/severity.yml with its targets.
- `severity_target(level, field)`: one value of one level, such as `"15m"`.
- `escalation_table(level=None)`: who is paged or told, and when.
- `escalation_contacts()`: the contacts the ladders name and how to reach them.
- `runbook_catalogue()`: one row per `docs/runbooks/*.md`, from its front matter.
- `runbook_steps(slug, tag)`: the code cells of `notebooks/<slug>.py` tagged
  `tag`, each with its explanation and, when `build/executed/<slug>.ipynb`
  exists, the output of that run.

Every path resolves from the directory that holds mkdocs.yml, never from the
working directory; the policy files come from `$DRILLBOOK_POLICY_DIR` when it is
set. Anything a macro cannot render raises `SiteError` naming the file and what
it expected, and mkdocs-macros (`on_error_fail: true`) fails the build.

The `render_*` functions are plain functions of their inputs, usable and
testable without mkdocs.
"""

from __future__ import annotations

import os
import posixpath
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jupytext
import nbformat
import yaml

from checks import (
    POLICY_DIR_VARIABLE,
    ConfigError,
    EscalationPolicy,
    SeverityPolicy,
    format_duration,
    load_escalation,
    load_severity,
)

__all__ = [
    "OUTPUT_TITLE",
    "SEVERITY_FIELDS",
    "RunbookPage",
    "SiteError",
    "SitePaths",
    "define_env",
    "read_runbook_pages",
    "render_escalation_contacts",
    "render_escalation_table",
    "render_runbook_catalogue",
    "render_runbook_steps",
    "render_severity_matrix",
    "render_severity_target",
]

OUTPUT_TITLE = "Output of the last verified run"
"""Title of the collapsible block that holds a step's recorded output."""

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

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_CATALOGUE_KEYS = ("title", "description", "severity", "owner", "last_reviewed")


class SiteError(Exception):
    """A macro cannot render what a page asked for; the message names the file and the fix."""


class MacrosEnv(Protocol):
    """The part of mkdocs-macros' environment that `define_env` uses."""

    @property
    def conf(self) -> Mapping[str, Any]: ...

    @property
    def page(self) -> Any: ...

    def macro(self, v: Callable[..., Any], name: str = "") -> Any: ...


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
    def executed(self) -> Path:
        """Executed notebooks that a verified run (CI, `make`) left for the site."""
        return self.root / "build" / "executed"

    def policy_file(self, name: str) -> Path | None:
        """`policy/<name>` beside mkdocs.yml, or None to let `$DRILLBOOK_POLICY_DIR` decide."""
        if os.environ.get(POLICY_DIR_VARIABLE):
            return None
        return self.root / "policy" / name

    def severity(self) -> SeverityPolicy:
        return load_severity(self.policy_file("severity.yml"))

    def escalation(self) -> EscalationPolicy:
        return load_escalation(self.policy_file("escalation.yml"), severity=self.severity())


# --------------------------------------------------------------------------- Markdown helpers


def _escape(text: str) -> str:
    """Make policy text safe inside one table cell: no pipes, no line breaks."""
    return " ".join(text.split()).replace("|", r"\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; cells must already be escaped."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n" + "\n".join(lines) + "\n"


def _fence(code: str, language: str) -> str:
    """A fenced code block whose fence is longer than any backtick run inside the code."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def _duration(value: timedelta) -> str:
    return format_duration(value)


# --------------------------------------------------------------------------- severity and escalation


def render_severity_matrix(policy: SeverityPolicy) -> str:
    """Every level of the severity policy as one Markdown table, most severe first."""
    header = (
        "Level",
        "Name",
        "Definition",
        "Examples",
        "Acknowledge within",
        "Resolve within",
        "Update every",
        "Paging",
    )
    rows = []
    for level in policy.levels:
        aliases = f" ({', '.join(level.aliases)})" if level.aliases else ""
        rows.append(
            (
                f"**{level.id}**{aliases}",
                _escape(level.name),
                _escape(level.definition),
                "<br>".join(f"• {_escape(example)}" for example in level.examples),
                _duration(level.acknowledge_within),
                _duration(level.resolve_within),
                _duration(level.update_every),
                _escape(level.paging),
            )
        )
    return _table(header, rows)


def render_severity_target(policy: SeverityPolicy, level: str, field: str) -> str:
    """One value of one level (an id or an alias): durations as `15m`, text as written."""
    if field not in SEVERITY_FIELDS:
        raise SiteError(f"severity_target: unknown field {field!r}; use one of {', '.join(SEVERITY_FIELDS)}")
    value = getattr(policy.level(level), field)
    return _duration(value) if isinstance(value, timedelta) else str(value)


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
            cells = [
                "at once" if step.after == timedelta(0) else _duration(step.after),
                ", ".join(_escape(contact.name) for contact in step.page) or "—",
                ", ".join(_escape(contact.name) for contact in step.notify) or "—",
            ]
            if level is None:
                cells.insert(0, f"**{entry.label}**" if index == 0 else "")
            rows.append(cells)
    return _table(header, rows)


def render_escalation_contacts(escalation: EscalationPolicy) -> str:
    """The contacts of the escalation policy and how each is reached."""
    rows = [(_escape(c.name), _escape(c.reach)) for c in escalation.contacts.values()]
    return _table(("Contact", "How to reach"), rows)


# --------------------------------------------------------------------------- runbook catalogue


@dataclass(frozen=True, slots=True)
class RunbookPage:
    """What the catalogue shows of one `docs/runbooks/<slug>.md`, read from its front matter."""

    slug: str
    path: Path
    title: str
    description: str
    severity: str
    owner: str
    services: tuple[str, ...]
    alerts: tuple[str, ...]
    last_reviewed: date
    review_every_days: int | None

    def review_due(self) -> date | None:
        if self.review_every_days is None:
            return None
        return self.last_reviewed + timedelta(days=self.review_every_days)


def _front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise SiteError(f"{path}: no front matter; a runbook page starts with a '---' YAML block")
    try:
        data = yaml.safe_load(match[1])
    except yaml.YAMLError as exc:
        raise SiteError(f"{path}: the front matter is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SiteError(f"{path}: the front matter must be a mapping of keys to values")
    return data


def _strings(path: Path, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, ())
    if isinstance(value, str) or not isinstance(value, list):
        raise SiteError(f"{path}: front matter {key!r} must be a list, such as [api]")
    return tuple(str(item) for item in value)


def _read_runbook_page(path: Path) -> RunbookPage:
    data = _front_matter(path)
    missing = [key for key in _CATALOGUE_KEYS if key not in data]
    if missing:
        raise SiteError(f"{path}: the front matter lacks {', '.join(missing)}")
    reviewed = data["last_reviewed"]
    if isinstance(reviewed, datetime):
        reviewed = reviewed.date()
    elif not isinstance(reviewed, date):
        try:
            reviewed = date.fromisoformat(str(reviewed))
        except ValueError as exc:
            raise SiteError(f"{path}: last_reviewed must be a date such as 2026-11-20") from exc
    every = data.get("review_every_days")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise SiteError(f"{path}: review_every_days must be a positive whole number of days")
    return RunbookPage(
        slug=path.stem,
        path=path,
        title=str(data["title"]),
        description=str(data["description"]),
        severity=str(data["severity"]),
        owner=str(data["owner"]),
        services=_strings(path, data, "services"),
        alerts=_strings(path, data, "alerts"),
        last_reviewed=reviewed,
        review_every_days=every,
    )


def read_runbook_pages(runbooks_dir: Path) -> tuple[RunbookPage, ...]:
    """Every runbook page in `runbooks_dir` (all `*.md` but `index.md`), sorted by file name."""
    paths = sorted(p for p in runbooks_dir.glob("*.md") if p.name != "index.md")
    return tuple(_read_runbook_page(path) for path in paths)


def render_runbook_catalogue(
    pages: Sequence[RunbookPage],
    severity: SeverityPolicy,
    *,
    link_from: str = "runbooks/index.md",
    today: date | None = None,
) -> str:
    """One row per runbook, most severe first; links are relative to the page `link_from`."""
    if not pages:
        return "\n*No runbooks yet: add `docs/runbooks/<slug>.md` and `notebooks/<slug>.py`.*\n"
    order = {level.id: index for index, level in enumerate(severity.levels)}
    today = today or datetime.now(UTC).date()
    rows = []
    ranked = []
    for page in pages:
        try:
            level = severity.level(page.severity)
        except ConfigError as exc:
            raise SiteError(f"{page.path}: front matter severity: {exc}") from exc
        ranked.append((order[level.id], page.title.lower(), page, level.label))
    for _, _, page, label in sorted(ranked, key=lambda item: item[:2]):
        link = posixpath.relpath(f"runbooks/{page.slug}.md", posixpath.dirname(link_from) or ".")
        reviewed = page.last_reviewed.isoformat()
        due = page.review_due()
        if due is not None and due < today:
            reviewed += f" (review overdue since {due.isoformat()})"
        rows.append(
            (
                f"[{_escape(page.title)}]({link})<br>{_escape(page.description)}",
                label,
                _escape(page.owner),
                ", ".join(_escape(service) for service in page.services) or "—",
                ", ".join(f"`{_escape(alert)}`" for alert in page.alerts) or "—",
                reviewed,
            )
        )
    header = ("Runbook", "Severity", "Owner", "Services", "Alerts", "Last reviewed")
    return _table(header, rows)


# --------------------------------------------------------------------------- runbook steps


def _split_explanation(source: str) -> tuple[str, str]:
    """Split a cell into its leading `# ` comment lines, as Markdown prose, and the code after them.

    A bare `#` line separates paragraphs of the explanation.
    """
    lines = source.splitlines()
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    prose: list[str] = []
    while index < len(lines) and lines[index].startswith("#"):
        text = lines[index][1:]
        prose.append(text[1:] if text.startswith(" ") else text)
        index += 1
    code = "\n".join(lines[index:]).strip("\n")
    return "\n".join(prose).strip(), code


def _tags(cell: Any) -> tuple[str, ...]:
    return tuple(cell.get("metadata", {}).get("tags", ()))


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _render_outputs(outputs: Sequence[Any]) -> str:
    """A cell's recorded outputs as Markdown: `text/markdown` as is, else `text/plain` as text."""
    parts: list[str] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(_fence(_text(output.get("text", "")), "text"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "text/markdown" in data:
                parts.append(_text(data["text/markdown"]).strip())
            elif "text/plain" in data:
                parts.append(_fence(_text(data["text/plain"]), "text"))
            elif data:
                parts.append(f"*({', '.join(sorted(data))} output, not shown here)*")
        elif kind == "error":
            message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
            parts.append("The step raised an error:\n\n" + _fence(message, "text"))
    return "\n\n".join(part for part in parts if part) or "*The step displayed nothing.*"


def _details(title: str, body: str, kind: str = "info") -> str:
    return f'??? {kind} "{title}"\n\n' + textwrap.indent(body, "    ")


def _when(value: Any) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _verdict(executed: Any) -> str:
    """The admonition above the steps, from the run metadata the runner leaves in `drillbook`."""
    meta = executed.get("metadata", {}).get("drillbook", {})
    environment = str(meta.get("environment") or "sandbox")
    against = "the sandbox" if environment == "sandbox" else f"the {environment} environment"
    when = _when(meta.get("executed_at"))
    on = f" on {when}" if when else " (the run did not record its date)"
    status = meta.get("status")
    if status not in (None, "ok"):
        return f'!!! failure "The last run against {against}{on} did not pass: {status}"'
    return f'!!! success "Verified against {against}{on}"'


def _recorded_outputs(executed: Any) -> dict[str, list[Any]]:
    """Executed code cells by source, in order, so a step finds its own run even if cells moved."""
    by_source: dict[str, list[Any]] = {}
    for cell in executed.get("cells", ()):
        if cell.get("cell_type") == "code":
            by_source.setdefault(_text(cell.get("source", "")).strip(), []).append(cell)
    return by_source


def render_runbook_steps(
    notebook_path: Path, executed_path: Path | None, tag: str, *, badge: bool = True
) -> str:
    """The code cells of a Jupytext notebook tagged `tag`, as explained steps with their outputs.

    `executed_path` is the executed `.ipynb` of a verified run; when it is None or
    missing, the steps say they were not verified in this build. `badge` puts that
    verdict above the steps (a page shows it once, above its first steps).
    """
    if not notebook_path.is_file():
        raise SiteError(f"runbook_steps: no notebook at {notebook_path}")
    notebook = jupytext.read(notebook_path)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    cells = [cell for cell in code_cells if tag in _tags(cell)]
    if not cells:
        known = sorted({t for cell in code_cells for t in _tags(cell)})
        raise SiteError(
            f"runbook_steps: no code cell of {notebook_path} is tagged {tag!r}; "
            f"the tags in that notebook are: {', '.join(known) or '(none)'}"
        )

    recorded: dict[str, list[Any]] | None = None
    if executed_path is not None and executed_path.is_file():
        executed = nbformat.read(executed_path, as_version=4)
        recorded = _recorded_outputs(executed)
        verdict = _verdict(executed)
    else:
        verdict = '!!! warning "Not verified in this build: the steps show code, not output"'

    blocks = [verdict] if badge else []
    for number, cell in enumerate(cells, start=1):
        explanation, code = _split_explanation(cell.source)
        if len(cells) > 1:
            explanation = f"**Step {number}.** {explanation}".rstrip()
        if explanation:
            blocks.append(explanation)
        if code:
            blocks.append(_fence(code, "python"))
        if recorded is None:
            continue
        runs = recorded.get(cell.source.strip())
        if runs:
            blocks.append(_details(OUTPUT_TITLE, _render_outputs(runs.pop(0).get("outputs", ()))))
        else:
            blocks.append("*This step changed after the last verified run; no output to show.*")
    return "\n\n" + "\n\n".join(blocks) + "\n\n"


# --------------------------------------------------------------------------- mkdocs-macros entry point


def define_env(env: MacrosEnv) -> None:
    """Register the macros with mkdocs-macros (called once per build)."""
    paths = SitePaths.from_config(env.conf)

    def severity_matrix() -> str:
        """Every severity level of policy/severity.yml with its response targets."""
        return render_severity_matrix(paths.severity())

    def severity_target(level: str, field: str) -> str:
        """One value of one severity level, such as `severity_target("SEV1", "update_every")`."""
        return render_severity_target(paths.severity(), level, field)

    def escalation_table(level: str | None = None) -> str:
        """The escalation ladders of policy/escalation.yml; only `level`'s when given."""
        return render_escalation_table(paths.severity(), paths.escalation(), level)

    def escalation_contacts() -> str:
        """The contacts of policy/escalation.yml and how to reach them."""
        return render_escalation_contacts(paths.escalation())

    def runbook_catalogue() -> str:
        """A table of every runbook page, from its front matter."""
        page = env.page
        link_from = page.file.src_path.replace(os.sep, "/") if page is not None else "index.md"
        return render_runbook_catalogue(
            read_runbook_pages(paths.docs / "runbooks"), paths.severity(), link_from=link_from
        )

    pages_with_badge: set[str] = set()

    def runbook_steps(slug: str, tag: str) -> str:
        """The cells of notebooks/<slug>.py tagged `tag`, with the output of the last verified run."""
        notebook = paths.notebooks / f"{slug}.py"
        if not notebook.is_file():
            known = sorted(p.stem for p in paths.notebooks.glob("*.py"))
            raise SiteError(
                f"runbook_steps: no notebook {notebook} for the runbook {slug!r}; "
                f"the notebooks are: {', '.join(known) or '(none)'}"
            )
        page = env.page.file.src_path if env.page is not None else ""
        badge = page not in pages_with_badge
        pages_with_badge.add(page)
        return render_runbook_steps(notebook, paths.executed / f"{slug}.ipynb", tag, badge=badge)

    for macro in (
        severity_matrix,
        severity_target,
        escalation_table,
        escalation_contacts,
        runbook_catalogue,
        runbook_steps,
    ):
        env.macro(macro, macro.__name__)
