"""Runbooks on the site: the catalogue, review status, verification and drill badges, steps, runbooks.json."""

from __future__ import annotations

import html
import json
import posixpath
import re
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import nbformat

from checks import ConfigError, SeverityPolicy, Targets
from checks.redact import redacted
from drillbook.notebooks import read_notebook

from ._by_hand import BY_HAND_TAGS, check_calls, notebook_names, render_by_hand
from ._common import SiteError, SitePaths, escape, fence, front_matter, table

OUTPUT_TITLE = "Output of the last verified run"
"""Title of the collapsible block that holds a step's recorded output."""

REVIEW_DUE_WITHIN = timedelta(days=14)
"""A review is "due" this long before its date, "overdue" after it."""

_CATALOGUE_KEYS = ("title", "description", "severity", "owner", "last_reviewed")


# --------------------------------------------------------------------------- pages


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A dashboard the runbook's front matter links (`dashboards: [{title, url}]`)."""

    title: str
    url: str


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
    tags: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    dashboards: tuple[Dashboard, ...] = ()
    # alert label -> notebook parameter, for runs an alert starts (drillbook receive)
    label_parameters: Mapping[str, str] = field(default_factory=dict, hash=False)

    def review_due(self) -> date | None:
        if self.review_every_days is None:
            return None
        return self.last_reviewed + timedelta(days=self.review_every_days)

    def review_status(self, today: date) -> str:
        """`ok`, `due` (within two weeks of its date), `overdue`, or `none` when no period is set."""
        due = self.review_due()
        if due is None:
            return "none"
        if due < today:
            return "overdue"
        if due - today <= REVIEW_DUE_WITHIN:
            return "due"
        return "ok"


def _strings(path: Path, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str) or not isinstance(value, list):
        raise SiteError(f"{path}: front matter {key!r} must be a list, such as [api]")
    return tuple(str(item) for item in value)


def _dashboards(path: Path, data: Mapping[str, Any]) -> tuple[Dashboard, ...]:
    value = data.get("dashboards", [])
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and item.get("title") and item.get("url") for item in value
    ):
        raise SiteError(f"{path}: front matter 'dashboards' must be a list of {{title, url}}")
    return tuple(Dashboard(title=str(item["title"]), url=str(item["url"])) for item in value)


def _read_runbook_page(path: Path) -> RunbookPage:
    data = front_matter(path)
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
        tags=_strings(path, data, "tags"),
        faults=_strings(path, data, "faults"),
        symptoms=_strings(path, data, "symptoms"),
        needs=_strings(path, data, "needs"),
        dashboards=_dashboards(path, data),
        label_parameters={str(k): str(v) for k, v in (data.get("label_parameters") or {}).items()},
    )


def read_runbook_pages(runbooks_dir: Path) -> tuple[RunbookPage, ...]:
    """Every runbook page in `runbooks_dir` (all `*.md` but `index.md`), sorted by file name."""
    paths = sorted(p for p in runbooks_dir.glob("*.md") if p.name != "index.md")
    return tuple(_cached_page(path, path.stat().st_mtime_ns) for path in paths)


@lru_cache(maxsize=4096)
def _cached_page(path: Path, mtime_ns: int) -> RunbookPage:
    """A page's front matter, read once per build although the catalogue, alerts, print and index need it."""
    return _read_runbook_page(path)


# --------------------------------------------------------------------------- verification and drills


@dataclass(frozen=True, slots=True)
class Verification:
    """The last executed run of a runbook's notebook that this build has (`build/executed/<slug>`)."""

    at: datetime | None
    status: str
    environment: str
    duration_s: float | None

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class DrillResult:
    """One drill of one runbook, from `build/drills/summary.json`."""

    fault: str
    passed: bool
    duration_s: float
    finished_at: datetime | None


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _verification_from(meta: Mapping[str, Any], finished_key: str) -> Verification:
    seconds = meta.get("duration_s")
    return Verification(
        at=_moment(meta.get(finished_key)),
        status=str(meta.get("status") or "ok"),
        environment=str(meta.get("environment") or "sandbox"),
        duration_s=float(seconds) if isinstance(seconds, int | float) else None,
    )


def read_verification(executed: Path, slug: str) -> Verification | None:
    """From `<slug>.json` (the RunRecord) when present, else from the executed notebook's metadata."""
    record = executed / f"{slug}.json"
    if record.is_file():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SiteError(f"{record}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            return _verification_from(data, "finished_at")
    notebook = executed / f"{slug}.ipynb"
    if notebook.is_file():
        meta = nbformat.read(notebook, as_version=4).get("metadata", {}).get("drillbook", {})
        return _verification_from(meta, "executed_at")
    return None


def read_drills(summary: Path) -> dict[str, tuple[DrillResult, ...]]:
    """`build/drills/summary.json` by runbook slug; empty when the drills did not run in this build."""
    if not summary.is_file():
        return {}
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SiteError(f"{summary}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SiteError(f"{summary}: expected an object of runbook slug → drill result(s)")
    drills: dict[str, tuple[DrillResult, ...]] = {}
    for slug, value in data.items():
        entries = value if isinstance(value, list) else [value]
        results = []
        for entry in entries:
            if not isinstance(entry, dict) or "passed" not in entry:
                raise SiteError(
                    f"{summary}: the drill of {slug!r} must be an object with fault, passed, "
                    f"duration_s and finished_at (or a list of them), not {entry!r}"
                )
            seconds = entry.get("duration_s")
            results.append(
                DrillResult(
                    fault=str(entry.get("fault", "")),
                    passed=entry["passed"] is True,
                    duration_s=float(seconds) if isinstance(seconds, int | float) else 0.0,
                    finished_at=_moment(entry.get("finished_at")),
                )
            )
        drills[str(slug)] = tuple(results)
    return drills


def drill_phrase(drills: Sequence[DrillResult]) -> str:
    """`drill passed in 4.8 s`, `2 drills passed (a in 4.8 s, b in 6.1 s)`, `drill failed: fault x`."""
    failed = [d for d in drills if not d.passed]
    if failed:
        return "drill failed: " + ", ".join(f"fault {d.fault}" for d in failed)
    if len(drills) == 1:
        return f"drill passed in {drills[0].duration_s:.1f} s"
    return (
        f"{len(drills)} drills passed ("
        + ", ".join(f"{d.fault} in {d.duration_s:.1f} s" for d in drills)
        + ")"
    )


def render_badge(verification: Verification | None, drills: Sequence[DrillResult] = ()) -> str:
    """The admonition above a runbook's steps: verified when, and how its drills went.

    A failed drill makes the runbook unverified, whatever its last run: the box says so first."""
    drill = f"; {drill_phrase(drills)}" if drills else ""
    if any(not d.passed for d in drills):
        if verification is None:
            return f'!!! failure "Not verified: {drill_phrase(drills)}; no run of its notebook in this build"'
        verdict = "passed" if verification.passed else f"did not pass ({verification.status})"
        return f'!!! failure "Not verified: {drill_phrase(drills)}; {_run_phrase(verification)} {verdict}"'
    if verification is None:
        return f'!!! warning "Not verified in this build: the steps show code, not output{drill}"'
    if not verification.passed:
        return f'!!! failure "{_run_phrase(verification)} did not pass: {verification.status}{drill}"'
    run = _run_phrase(verification).removeprefix("The last run against ")
    return f'!!! success "Verified against {run}{drill}"'


def _run_phrase(verification: Verification) -> str:
    env = verification.environment
    against = "the sandbox" if env == "sandbox" else f"the {env} environment"
    on = f" on {format_moment(verification.at)}" if verification.at else " (the run did not record its date)"
    return f"The last run against {against}{on}"


# --------------------------------------------------------------------------- drill evidence


@dataclass(frozen=True, slots=True)
class DrillEvidence:
    """What one drill's executed notebook (`build/drills/<slug>--<fault>.ipynb`) recorded."""

    fault: str
    passed: bool | None
    finished_at: datetime | None
    duration_s: float | None
    diagnosis: tuple[str, ...]
    summary: tuple[str, ...]
    mitigation: tuple[str, ...]
    verify: tuple[str, ...]


_EVIDENCE_TAGS = ("diagnosis", "summary", "mitigation", "verify")


def read_drill_evidence(
    drills_dir: Path, slug: str, results: Sequence[DrillResult] = ()
) -> tuple[DrillEvidence, ...]:
    """Every drill notebook of `slug` in `drills_dir`, with its verdict from `results` (the drills'
    summary) when it has one, else from the notebook's run status; outputs as Markdown, by tag."""
    verdicts = {result.fault: result for result in results}
    found = []
    for path in sorted(drills_dir.glob(f"{slug}--*.ipynb")):
        fault = path.stem.split("--", 1)[1]
        notebook = _read_executed(path, path.stat().st_mtime_ns)
        meta = notebook.get("metadata", {}).get("drillbook", {})
        outputs: dict[str, list[str]] = {tag: [] for tag in _EVIDENCE_TAGS}
        for cell in notebook.get("cells", ()):
            tag = next((t for t in _EVIDENCE_TAGS if t in _tags(cell)), None)
            if cell.get("cell_type") == "code" and tag is not None:
                outputs[tag].append(_render_outputs(cell.get("outputs", ())))
        verdict = verdicts.get(fault)
        seconds = meta.get("duration_s")
        duration: float | None
        if verdict is not None:
            passed: bool | None = verdict.passed
            finished, duration = verdict.finished_at, verdict.duration_s
        else:
            passed = None if "status" not in meta else meta["status"] == "ok"
            finished, duration = None, float(seconds) if isinstance(seconds, int | float) else None
        found.append(
            DrillEvidence(
                fault=fault,
                passed=passed,
                finished_at=finished or _moment(meta.get("executed_at")),
                duration_s=duration,
                diagnosis=tuple(outputs["diagnosis"]),
                summary=tuple(outputs["summary"]),
                mitigation=tuple(outputs["mitigation"]),
                verify=tuple(outputs["verify"]),
            )
        )
    return tuple(found)


def render_drill_evidence(evidence: Sequence[DrillEvidence]) -> str:
    """One fold per drill: when, how long, what the diagnosis reported with the fault injected,
    what the mitigation did and what the checks saw after it. A failed drill's fold is open."""
    blocks = []
    for drill in evidence:
        verdict = {True: "passed", False: "FAILED", None: "without a recorded verdict"}[drill.passed]
        when = format_moment(drill.finished_at) if drill.finished_at else "date not recorded"
        took = f", {drill.duration_s:.1f} s" if drill.duration_s is not None else ""
        parts = []
        for title, outputs in (
            ("With the fault injected, the diagnosis reported", drill.summary or drill.diagnosis),
            ("The mitigation did", drill.mitigation),
            ("Afterwards the checks saw", drill.verify),
        ):
            if outputs:
                parts.append(f"**{title}:**\n\n" + "\n\n".join(outputs))
        if drill.summary and drill.diagnosis:
            parts.insert(1, _details("Every diagnosis step of this drill", "\n\n".join(drill.diagnosis)))
        kind = "success" if drill.passed else "failure"
        fold = "???+" if drill.passed is False else "???"
        title = f"Drill {verdict}: fault {drill.fault}, {when}{took}"
        body = "\n\n".join(parts) or "*The drill's notebook recorded no output.*"
        blocks.append(f'{fold} {kind} "{title}"\n\n' + textwrap.indent(body, "    "))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- catalogue


def _review_cell(page: RunbookPage, today: date) -> str:
    due = page.review_due()
    status = page.review_status(today)
    if due is None:
        return "no review period"
    if status == "overdue":
        return f'<span class="drillbook-overdue">review overdue since {due.isoformat()}</span>'
    if status == "due":
        return f'<span class="drillbook-due">review due by {due.isoformat()}</span>'
    return f"next review by {due.isoformat()}"


def _drill_cell(drills: Sequence[DrillResult]) -> str:
    if not drills:
        return "not drilled in this build"
    moments = [d.finished_at for d in drills if d.finished_at]
    when = f" ({max(moments).astimezone(UTC).date().isoformat()})" if moments else ""
    return escape(drill_phrase(drills)) + when


def breakable(name: str) -> str:
    """An identifier such as `PostgresConnectionsHigh` that may wrap only between its words."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[_:-])", "<wbr>", name)


def _status_cell(page: RunbookPage, today: date, drills: Sequence[DrillResult]) -> str:
    return (
        f"{_review_cell(page, today)}<br>reviewed {page.last_reviewed.isoformat()}<br>{_drill_cell(drills)}"
    )


def _keywords(page: RunbookPage) -> str:
    """What the catalogue filter matches besides the row's text: symptoms, faults, alert names."""
    words = " ".join((*page.symptoms, *page.faults, *page.alerts))
    return html.escape(" ".join(words.split()), quote=True).replace("|", "&#124;")


def render_runbook_catalogue(
    pages: Sequence[RunbookPage],
    severity: SeverityPolicy,
    *,
    link_from: str = "runbooks/index.md",
    today: date | None = None,
    drills: Mapping[str, Sequence[DrillResult]] | None = None,
    known_alerts: Collection[str] | None = None,
) -> str:
    """One row per runbook, most severe first; links are relative to the page `link_from`.

    An alert links to its rule on the alerts page when `known_alerts` (the rule files' alert
    names; None: every alert) has it.

    Five columns, so that the table fits the page's column on a laptop; on a phone the
    site's styles show each row as a card. The runbook's link comes first either way.
    """
    if not pages:
        return "\n*No runbooks yet: add `docs/runbooks/<slug>.md` and `notebooks/<slug>.py`.*\n"
    today = today or datetime.now(UTC).date()
    drills = drills or {}
    here = posixpath.dirname(link_from) or "."
    alerts_page = posixpath.relpath("alerts.md", here)
    rows = []
    for page, label in by_severity(pages, severity):
        link = posixpath.relpath(f"runbooks/{page.slug}.md", here)
        about = ", ".join(escape(service) for service in page.services)
        if page.tags:
            about += " · " + ", ".join(f"#{escape(tag)}" for tag in page.tags)
        rows.append(
            (
                f"[{escape(page.title)}]({link})"
                f'<span class="drillbook-keywords" data-keywords="{_keywords(page)}"></span>'
                f'<br>{escape(page.description)}<br><span class="drillbook-muted">{about}</span>',
                label,
                escape(page.owner),
                "<br>".join(
                    f"[{breakable(escape(alert))}]({alerts_page}#alert-{alert})"
                    if known_alerts is None or alert in known_alerts
                    else f"`{escape(alert)}`"
                    for alert in page.alerts
                )
                or "—",
                _status_cell(page, today, drills.get(page.slug, ())),
            )
        )
    header = ("Runbook", "Severity", "Owner", "Alerts", "Review and drill")
    search = (
        '\n<p><input type="search" class="drillbook-filter" data-filter="drillbook-catalogue" '
        'placeholder="Filter by symptom, alert, service, owner or tag" '
        'aria-label="Filter the runbook catalogue"></p>\n'
    )
    return search + table(header, rows, attrs='class="drillbook-catalogue" id="drillbook-catalogue"')


def by_severity(pages: Sequence[RunbookPage], severity: SeverityPolicy) -> list[tuple[RunbookPage, str]]:
    """The runbooks, most severe first, then by title; each with its level's label."""
    order = {level.id: index for index, level in enumerate(severity.levels)}
    ranked = []
    for page in pages:
        try:
            level = severity.level(page.severity)
        except ConfigError as exc:
            raise SiteError(f"{page.path}: front matter severity: {exc}") from exc
        ranked.append((order[level.id], page.title.lower(), page, level.label))
    return [(page, label) for _, _, page, label in sorted(ranked, key=lambda item: item[:2])]


def runbook_index(
    pages: Sequence[RunbookPage],
    paths: SitePaths,
    *,
    site_url: str,
    today: date,
    use_directory_urls: bool = True,
) -> list[dict[str, Any]]:
    """The entries of runbooks.json: what a chat bot or an alert template needs to link a runbook."""
    drills = read_drills(paths.drill_summary)
    entries = []
    for page in pages:
        verification = read_verification(paths.executed, page.slug)
        due = page.review_due()
        path = f"runbooks/{page.slug}/" if use_directory_urls else f"runbooks/{page.slug}.html"
        entries.append(
            {
                "slug": page.slug,
                "title": page.title,
                "description": page.description,
                "url": site_url.rstrip("/") + "/" + path if site_url else path,
                "path": path,
                "severity": page.severity,
                "owner": page.owner,
                "services": list(page.services),
                "alerts": list(page.alerts),
                "tags": list(page.tags),
                "last_reviewed": page.last_reviewed.isoformat(),
                "review_due": due.isoformat() if due else None,
                "review_status": page.review_status(today),
                "last_verified": (
                    None
                    if verification is None
                    else {
                        "at": verification.at.isoformat() if verification.at else None,
                        "status": verification.status,
                        "environment": verification.environment,
                    }
                ),
                "drills": [
                    {
                        "fault": d.fault,
                        "passed": d.passed,
                        "duration_s": d.duration_s,
                        "finished_at": d.finished_at.isoformat() if d.finished_at else None,
                    }
                    for d in drills.get(page.slug, ())
                ],
            }
        )
    return entries


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


STATUS_GLYPHS = {
    "⚫": "na",
    "🟢": "ok",
    "🟡": "warn",
    "⚪": "unknown",
    "🔴": "crit",
    "📝": "plan",
    "✅": "done",
    "⏭": "skip",
    "⏸": "held",
    "⛔": "refused",
    "❌": "failed",
}
"""The emoji a check's or an action's Markdown starts with: the page draws a shape instead, since a
machine (or a PDF) without an emoji font shows an empty box. The status words follow in the text."""

_GLYPH = re.compile("(" + "|".join(map(re.escape, STATUS_GLYPHS)) + ")\ufe0f?")


def status_marks(markdown: str) -> str:
    """`markdown` with each status emoji replaced by a CSS-drawn mark (the text says the status)."""
    return _GLYPH.sub(
        lambda m: (
            f'<span class="drillbook-mark drillbook-mark--{STATUS_GLYPHS[m[1]]}" aria-hidden="true"></span>'
        ),
        markdown,
    )


_LIST_AFTER_LINE = re.compile(r"(?m)^([^\s\-*|][^\n]*)\n([-*] )")
"""A list right under a line of text: Jupyter shows it as a list, Python-Markdown only after a blank line."""


def _render_outputs(outputs: Sequence[Any]) -> str:
    """A cell's recorded outputs as Markdown: `text/markdown` as is, else `text/plain` as text."""
    parts: list[str] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(fence(_text(output.get("text", "")), "text"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "text/markdown" in data:
                parts.append(
                    status_marks(_LIST_AFTER_LINE.sub(r"\1\n\n\2", _text(data["text/markdown"]).strip()))
                )
            elif "text/plain" in data:
                parts.append(fence(_text(data["text/plain"]), "text"))
            elif data:
                parts.append(f"*({', '.join(sorted(data))} output, not shown here)*")
        elif kind == "error":
            message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
            parts.append("The step raised an error:\n\n" + fence(message, "text"))
    return "\n\n".join(part for part in parts if part) or "*The step displayed nothing.*"


def _details(title: str, text: str, kind: str = "info") -> str:
    return f'??? {kind} "{title}"\n\n' + textwrap.indent(text, "    ")


def _recorded_outputs(executed: Any) -> dict[str, list[Any]]:
    """Executed code cells by source, in order, so a step finds its own run even if cells moved."""
    by_source: dict[str, list[Any]] = {}
    for cell in executed.get("cells", ()):
        if cell.get("cell_type") == "code":
            by_source.setdefault(_text(cell.get("source", "")).strip(), []).append(cell)
    return by_source


@lru_cache(maxsize=4096)
def _read_notebook(path: Path, mtime_ns: int) -> Any:
    """A Jupytext notebook, read once per build even when a page renders several of its tags
    (and parsed once per content, across builds: drillbook.notebooks)."""
    return read_notebook(path)


@lru_cache(maxsize=4096)
def _read_executed(path: Path, mtime_ns: int) -> Any:
    return nbformat.read(path, as_version=4)


def tagged_cells(notebook_path: Path, tag: str) -> list[Any]:
    """The code cells of a Jupytext notebook tagged `tag`; raises naming the tags it has when none is."""
    if not notebook_path.is_file():
        raise SiteError(f"runbook_steps: no notebook at {notebook_path}")
    notebook = _read_notebook(notebook_path, notebook_path.stat().st_mtime_ns)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    cells = [cell for cell in code_cells if tag in _tags(cell)]
    if not cells:
        known = sorted({t for cell in code_cells for t in _tags(cell)})
        raise SiteError(
            f"runbook_steps: no code cell of {notebook_path} is tagged {tag!r}; "
            f"the tags in that notebook are: {', '.join(known) or '(none)'}"
        )
    return cells


def render_runbook_steps(
    notebook_path: Path,
    executed_path: Path | None,
    tag: str,
    *,
    badge: bool = True,
    drills: Sequence[DrillResult] = (),
    first_step: int = 1,
    evidence: Sequence[DrillEvidence] = (),
    by_hand: Targets | None = None,
) -> str:
    """The code cells of a Jupytext notebook tagged `tag`, as explained steps with their outputs.

    `executed_path` is the executed `.ipynb` of a verified run; when it is None or
    missing, the steps say they were not verified in this build. `badge` puts that
    verdict, with the runbook's `drills`, above the steps (a page shows it once).
    Steps are numbered from `first_step`, so that a page that shows several tags
    numbers its steps once, from top to bottom. Under the badge, `evidence` shows what
    each drill of the runbook recorded. With `by_hand`, each diagnosis and verification
    step that calls checks gets a fold with what a human runs by hand to see the same,
    for that environment (_by_hand.py).
    """
    cells = tagged_cells(notebook_path, tag)
    names = None
    if by_hand is not None and tag in BY_HAND_TAGS:
        notebook = _read_notebook(notebook_path, notebook_path.stat().st_mtime_ns)
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        parameters = next((cell.source for cell in code_cells if "parameters" in _tags(cell)), "")
        names = notebook_names([cell.source for cell in code_cells], parameters)

    recorded: dict[str, list[Any]] | None = None
    verification: Verification | None = None
    if executed_path is not None and executed_path.is_file():
        executed = _read_executed(executed_path, executed_path.stat().st_mtime_ns)
        recorded = _recorded_outputs(executed)
        verification = _verification_from(executed.get("metadata", {}).get("drillbook", {}), "executed_at")

    blocks = [render_badge(verification, drills)] if badge else []
    if badge and evidence:
        blocks.append(render_drill_evidence(evidence))
    for number, cell in enumerate(cells, start=first_step):
        explanation, code = _split_explanation(cell.source)
        explanation = f"**Step {number}.** {explanation}".rstrip()
        if explanation:
            blocks.append(explanation)
        if code:
            blocks.append(fence(code, "python"))
        if names is not None and by_hand is not None and code:
            where = f"{notebook_path}, step {number}"
            if fold := render_by_hand(check_calls(code, names), by_hand, where=where):
                blocks.append(fold)
        if recorded is None:
            continue
        runs = recorded.get(cell.source.strip())
        if runs:
            blocks.append(_details(OUTPUT_TITLE, _render_outputs(runs.pop(0).get("outputs", ()))))
        else:
            blocks.append("*This step changed after the last verified run; no output to show.*")
    # Notebook source and recorded outputs reach the page, the print page and the search index
    # from here: whatever in them looks like a secret is masked on the way.
    return "\n\n" + redacted("\n\n".join(blocks)) + "\n\n"
