"""Runbook pages: front matter against its schema, severity, review dates, sections, macros."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from checks import CheckError, SeverityPolicy, UnreadableFile, load_severity, read_utf8
from checks.targets import known_needs
from drillbook.lint import _yaml
from drillbook.lint._model import Sink, listing

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SECTIONS = (
    "Meaning",
    "Impact",
    "Diagnosis",
    "Mitigation",
    "Escalation",
    "Communication",
    "Recovery and prevention",
)
#: Sections whose steps come from the notebook, with the notebook tag they render.
RENDERED = {"Diagnosis": "diagnosis", "Mitigation": "mitigation"}
#: What `drillbook new` writes where the author has to: lint names each place until it is gone.
FILL_IN = "FILL IN"
#: A review falling due within this many days is announced as a warning.
DUE_SOON = timedelta(days=14)

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_STEPS = re.compile(r"""runbook_steps\(\s*["']([^"']*)["']\s*,\s*["']([^"']*)["']""")
_MACRO = re.compile(r"\{\{|\{%")
_CODE_LANGUAGES = {"python", "py", "python3", "pycon", "ipython", "bash", "sh", "shell", "console", "sql"}


@dataclass(frozen=True, slots=True)
class Page:
    """A runbook page, `docs/runbooks/<slug>.md`; `front` is None when its front matter is unreadable."""

    slug: str
    path: Path
    front: _yaml.Document | None
    body: tuple[str, ...]
    body_first_line: int

    @property
    def data(self) -> dict[str, Any]:
        data = self.front.data if self.front else None
        return data if isinstance(data, dict) else {}

    def line(self, *keys: str | int) -> int:
        return self.front.line(*keys) if self.front else 1

    def names(self, key: str) -> list[tuple[str, int]]:
        """The string items of the list `key` in the front matter, each with its line."""
        value = self.data.get(key)
        if not isinstance(value, list):
            return []
        return [(item, self.line(key, index)) for index, item in enumerate(value) if isinstance(item, str)]

    def steps(self) -> list[tuple[str, str, int]]:
        """Every `runbook_steps(slug, tag)` macro of the page: slug, tag and line."""
        found = []
        for offset, text in enumerate(self.body):
            for match in _STEPS.finditer(text):
                found.append((match[1], match[2], self.body_first_line + offset))
        return found


def read_pages(runbooks: Path, sink: Sink) -> list[Page]:
    """Every page of `runbooks` but index.md, front matter parsed (defects reported to `sink`)."""
    return [_read(path, sink) for path in sorted(runbooks.glob("*.md")) if path.name != "index.md"]


def _read(path: Path, sink: Sink) -> Page:
    slug = path.stem
    try:
        lines = read_utf8(path).splitlines()
    except UnreadableFile as exc:
        sink.error(path, exc.line, exc.reason)
        return Page(slug, path, None, (), 1)
    if not SLUG.match(slug):
        sink.error(path, 1, f"the file name {path.name!r} is no slug: use lower-case words joined by '-'")
    if not lines or lines[0].strip() != "---":
        sink.error(path, 1, "no front matter: a runbook page starts with a '---' YAML block")
        return Page(slug, path, None, tuple(lines), 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        sink.error(path, 1, "the front matter is never closed: end it with a '---' line")
        return Page(slug, path, None, (), len(lines) + 1)
    body, body_first_line = tuple(lines[end + 1 :]), end + 2
    try:
        front = _yaml.parse("\n".join(lines[1:end]), first_line=2)
    except _yaml.YamlError as exc:
        sink.error(path, exc.line or 1, f"front matter: {exc}")
        return Page(slug, path, None, body, body_first_line)
    if not isinstance(front.data, dict):
        sink.error(path, 1, "front matter: must be a mapping of keys to values, such as `title: ...`")
    return Page(slug, path, front, body, body_first_line)


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("drillbook").joinpath("schemas", "runbook.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _jsonable(value: Any) -> Any:
    """YAML values as JSON would hold them: dates become ISO strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def check_front_matter(pages: list[Page], sink: Sink) -> None:
    """Validate every page's front matter against drillbook/schemas/runbook.schema.json."""
    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for page in pages:
        if page.front is None or not isinstance(page.front.data, dict):
            continue
        instance = _jsonable(page.front.data)
        for error in sorted(validator.iter_errors(instance), key=lambda e: str(list(e.absolute_path))):
            keys = list(error.absolute_path)
            if error.validator == "additionalProperties" and not keys:
                known = listing(schema["properties"])
                for key in sorted(set(instance) - set(schema["properties"])):
                    sink.error(
                        page.path,
                        page.front.key_line(key),
                        f"front matter: unknown key {key!r} (known keys: {known})",
                    )
                continue
            if error.validator == "required":
                for key in error.validator_value:
                    if isinstance(error.instance, dict) and key not in error.instance:
                        wanted = schema["properties"].get(key, {}).get("description", "")
                        sink.error(
                            page.path,
                            page.line(*keys),
                            f"front matter: {key!r} is missing (expected: {wanted})",
                        )
                continue
            where = ".".join(map(str, keys))
            where = f"{where}: " if where else ""
            expected = error.schema.get("description") if isinstance(error.schema, dict) else None
            if not expected and keys:
                expected = schema["properties"].get(str(keys[0]), {}).get("description")
            hint = f" (expected: {expected})" if expected else ""
            sink.error(page.path, page.line(*keys), f"front matter: {where}{error.message}{hint}")


def load_policy(root: Path, sink: Sink) -> SeverityPolicy | None:
    """policy/severity.yml, or None after reporting why it cannot be read."""
    path = root / "policy" / "severity.yml"
    if not path.is_file():
        sink.error(path, 1, "the severity policy does not exist: runbook severities cannot be checked")
        return None
    try:
        return load_severity(path)
    except CheckError as exc:
        for text in str(exc).splitlines():
            sink.error(path, _leading_line(text), f"the severity policy is invalid: {text}")
        return None


def _leading_line(text: str) -> int:
    match = re.match(r"^[^:\s]+:(\d+):", text)
    return int(match[1]) if match else 1


def check_needs(pages: list[Page], sink: Sink) -> None:
    """What a page says its runbook needs must be something an environment can have: a
    capability, a setting or a signal (checks.targets.known_needs)."""
    known = known_needs()
    for page in pages:
        for name, line in page.names("needs"):
            if name not in known:
                sink.error(
                    page.path,
                    line,
                    f"needs {name!r}, which no environment can declare (capabilities, settings and "
                    f"signals: {listing(sorted(known))})",
                )


def check_severity(pages: list[Page], policy: SeverityPolicy, sink: Sink) -> None:
    """The page's severity must be a level or an alias of the policy."""
    levels = listing(level.label for level in policy.levels)
    for page in pages:
        value = page.data.get("severity")
        if not isinstance(value, str):
            continue
        try:
            policy.level(value)
        except CheckError:
            sink.error(
                page.path,
                page.line("severity"),
                f"severity {value!r} is not a level of policy/severity.yml (levels: {levels})",
            )


def _reviewed(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def check_reviews(pages: list[Page], policy: SeverityPolicy | None, sink: Sink) -> None:
    """Review dates: a warning when a review falls due; overdue is an error for a paging severity.

    A review is due `review_every_days` after `last_reviewed`. From `DUE_SOON` before that
    day on, the page gets a warning. Once the day has passed, the review is overdue: an
    error when the runbook's severity pages someone (`page: true` in policy/severity.yml,
    SEV1 and SEV2 in the default policy), a warning otherwise.
    """
    today = sink.today
    for page in pages:
        reviewed = _reviewed(page.data.get("last_reviewed"))
        every = page.data.get("review_every_days")
        if reviewed is None or not isinstance(every, int) or isinstance(every, bool) or every < 1:
            continue  # the schema check reports it
        line = page.line("last_reviewed")
        if reviewed > today:
            sink.error(page.path, line, f"last_reviewed {reviewed} is in the future (today is {today})")
            continue
        due = reviewed + timedelta(days=every)
        advice = "review the runbook against the system as it is now, then update last_reviewed"
        if today > due:
            severity = str(page.data.get("severity", ""))
            paging = False
            if policy is not None:
                try:
                    paging = policy.level(severity).page
                except CheckError:
                    paging = False
            message = f"review overdue since {due} ({(today - due).days} days, every {every} days): {advice}"
            if paging:
                sink.error(page.path, line, f"{message} (a {severity} runbook pages someone)")
            else:
                sink.warning(page.path, line, message)
        elif due - today <= DUE_SOON:
            when = "today" if due == today else f"in {(due - today).days} days"
            sink.warning(page.path, line, f"review due on {due} ({when}): {advice}")


def check_body(pages: list[Page], sink: Sink) -> None:
    """Fixed sections in order; Diagnosis and Mitigation rendered from the notebook; no copied code;
    nothing left to write from `drillbook new`."""
    for page in pages:
        if page.front is None:
            continue
        for key, value in page.data.items():
            if isinstance(value, str) and FILL_IN in value:
                sink.error(page.path, page.line(key), f"still to write (from `drillbook new`): {key}")
        headings: list[tuple[str, int]] = []
        fence: str | None = None
        uses_macros = False
        for offset, text in enumerate(page.body):
            line = page.body_first_line + offset
            opened = _FENCE.match(text)
            if fence is not None:
                if opened and opened[1].startswith(fence[0]) and len(opened[1]) >= len(fence):
                    fence = None
                continue
            if opened:
                fence = opened[1]
                if opened[2].lower() in _CODE_LANGUAGES:
                    sink.error(
                        page.path,
                        line,
                        f"a {opened[2]} code block in the page: diagnostics and mitigations live in the "
                        f"notebook; render them with runbook_steps({page.slug!r}, TAG)",
                    )
                continue
            uses_macros = uses_macros or bool(_MACRO.search(text))
            if FILL_IN in text:
                sink.error(page.path, line, f"still to write (from `drillbook new`): {text.strip()[:120]}")
            heading = _HEADING.match(text)
            if heading and len(heading[1]) == 2:
                headings.append((heading[2], line))
        _check_sections(page, headings, sink)
        _check_steps(page, headings, sink)
        if uses_macros and page.data.get("render_macros") is not True:
            sink.error(
                page.path,
                page.front.key_line("render_macros") if "render_macros" in page.data else 1,
                "the page calls macros but its front matter lacks `render_macros: true`, "
                "so the site would show them as text",
            )


def _check_sections(page: Page, headings: list[tuple[str, int]], sink: Sink) -> None:
    first: dict[str, int] = {}
    for name, line in headings:
        first.setdefault(name, line)
    order = listing(SECTIONS)
    previous_line = page.body_first_line
    for name in SECTIONS:
        if name in first:
            previous_line = first[name]
        else:
            sink.error(
                page.path, previous_line, f"missing section '## {name}' (a runbook has, in order: {order})"
            )
    rank = -1
    for name, line in first.items():
        if name not in SECTIONS:
            continue
        index = SECTIONS.index(name)
        if index < rank:
            sink.error(
                page.path,
                line,
                f"section '## {name}' comes after '## {SECTIONS[rank]}' (a runbook has, in order: {order})",
            )
        rank = max(rank, index)


def _check_steps(page: Page, headings: list[tuple[str, int]], sink: Sink) -> None:
    steps = page.steps()
    for slug, _tag, line in steps:
        if slug != page.slug:
            sink.error(
                page.path,
                line,
                f"runbook_steps({slug!r}, ...) renders another runbook's notebook; "
                f"this page is {page.slug!r}",
            )
    bounds = [*headings, ("", page.body_first_line + len(page.body) + 1)]
    for (name, start), (_, end) in itertools.pairwise(bounds):
        tag = RENDERED.get(name)
        if tag and not any(t == tag and start < line < end for _, t, line in steps):
            sink.error(
                page.path,
                start,
                f"section '## {name}' does not render the notebook: add "
                f"{{{{ runbook_steps({page.slug!r}, {tag!r}) }}}} (never copy code into the page)",
            )
