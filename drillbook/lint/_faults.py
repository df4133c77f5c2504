"""Faults: every fault a runbook lists is in the sandbox catalogue and has a drill."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from drillbook.lint import _yaml
from drillbook.lint._alerts import Rules
from drillbook.lint._model import Sink, listing
from drillbook.lint._pages import Page
from drillbook.project import Project


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    line: int
    alerts: tuple[tuple[str, int], ...]


def _catalogue(path: Path, sink: Sink) -> dict[str, Fault] | None:
    """The faults of sandbox/faults.yml by name; None when it cannot be read (reported)."""
    try:
        document = _yaml.read(path)
    except _yaml.YamlError as exc:
        sink.error(path, exc.line, str(exc))
        return None
    if not isinstance(document.data, list):
        sink.error(
            path, 1, "the fault catalogue must be a list of faults ({name, description, signal, alerts})"
        )
        return None
    faults: dict[str, Fault] = {}
    for index, entry in enumerate(document.data):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            sink.error(path, document.line(index), "a fault needs a `name`")
            continue
        if name in faults:
            sink.error(path, document.line(index, "name"), f"fault {name!r} is declared twice")
        alerts = entry.get("alerts") or []
        named = tuple(
            (str(alert), document.line(index, "alerts", i))
            for i, alert in enumerate(alerts if isinstance(alerts, list) else [])
        )
        faults[name] = Fault(name, document.line(index, "name"), named)
    return faults


def _drilled(folder: Path, sink: Sink) -> set[str]:
    """Every string literal in the drill tests: a drill for fault F names "F"."""
    strings: set[str] = set()
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            sink.error(path, exc.lineno, f"the drill does not parse: {exc.msg}")
            continue
        strings |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    return strings


def check_faults(root: Path, pages: list[Page], rules: Rules, sink: Sink) -> None:
    project = Project.at(root)
    path, drills = project.faults, project.drills
    catalogue_name, drills_name = sink.where(path), sink.where(drills)
    listed = [(page, name, line) for page in pages for name, line in page.names("faults")]
    if not path.is_file():
        for page in {page.slug: page for page, _, _ in listed}.values():
            sink.error(
                page.path,
                page.line("faults"),
                f"the page lists faults, but the fault catalogue {catalogue_name} does not exist "
                "([tool.drillbook] faults)",
            )
        return
    catalogue = _catalogue(path, sink)
    if catalogue is None:
        return
    drilled = _drilled(drills, sink)
    for page, name, line in listed:
        if name not in catalogue:
            sink.error(
                page.path,
                line,
                f"fault {name!r} is not in the fault catalogue {catalogue_name} "
                f"(known: {listing(sorted(catalogue))})",
            )
        elif name not in drilled:
            sink.error(
                page.path,
                line,
                f"fault {name!r} has no drill: no test in {drills_name}/ names {name!r}; "
                "write one that injects it and runs this runbook",
            )
    handled = {name for _, name, _ in listed}
    known_alerts = rules.names()
    for fault in catalogue.values():
        if fault.name not in handled:
            sink.warning(
                path,
                fault.line,
                f"fault {fault.name!r} is handled by no runbook: "
                "list it in the faults of the runbook that handles it",
            )
        if rules.complete:
            for alert, line in fault.alerts:
                if alert not in known_alerts:
                    sink.error(
                        path, line, f"fault {fault.name!r}: alert {alert!r} is not in the alert rule files"
                    )
