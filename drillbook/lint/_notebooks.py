"""Notebook hygiene: the fixed shape of a runbook notebook, read with jupytext and checked by AST.

A notebook is Jupytext py:percent text with a markdown title cell that links to
its page, one `parameters` cell of literal assignments, imports from the public
API of `checks` (and IPython.display) only, no `def`, `class`, shell or magics,
no sleeping, and mitigations that go through the gate (`gate.run(action)`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

from checks import UnreadableFile, read_utf8
from drillbook.lint._model import Sink
from drillbook.lint._pages import SLUG, Page
from drillbook.notebooks import RUN_PARAMETERS
from drillbook.project import Project

_MARKER = re.compile(r"^# %%")
_MAGIC = re.compile(r"^\s*(?:[\w.]+\s*=\s*)?([!%])")
_ALLOWED_MODULES = ("IPython.display",)
_FORBIDDEN_CALLS = {
    "get_ipython": "reaches into the IPython shell",
    "__import__": "imports dynamically",
    "exec": "executes generated code",
    "eval": "evaluates generated code",
}


@dataclass(frozen=True, slots=True)
class Cell:
    index: int
    kind: str
    tags: tuple[str, ...]
    source: str
    first_line: int  # the file line of the source's first line
    marker_line: int  # the file line of the cell's `# %%` marker (or 1)

    def line(self, lineno: int) -> int:
        """The file line of line `lineno` (1-based) of the source."""
        return self.first_line + lineno - 1


@dataclass(frozen=True, slots=True)
class Notebook:
    slug: str
    path: Path
    metadata: dict[str, Any]
    cells: tuple[Cell, ...]
    has_header: bool


def read_notebook(path: Path, sink: Sink) -> Notebook | None:
    try:
        text = read_utf8(path)
    except UnreadableFile as exc:
        sink.error(path, exc.line, exc.reason)
        return None
    try:
        notebook = jupytext.reads(text, fmt="py:percent")
    except Exception as exc:  # jupytext raises many types; any of them means the file is unreadable
        sink.error(path, 1, f"jupytext cannot read it as py:percent: {exc}")
        return None
    lines = text.splitlines()
    header_end = 0
    if lines and lines[0].startswith("# ---"):
        header_end = next((i + 1 for i in range(1, len(lines)) if lines[i].startswith("# ---")), 0)
    markers = [i for i in range(header_end, len(lines)) if _MARKER.match(lines[i])]
    raw = list(notebook.cells)
    starts: list[int | None]
    if len(raw) == len(markers):
        starts = list(markers)
    elif len(raw) == len(markers) + 1:
        starts = [header_end - 1, *markers]  # text before the first marker became a cell
    else:
        starts = [None] * len(raw)
    cells = []
    for index, (cell, start) in enumerate(zip(raw, starts, strict=True)):
        source = str(cell.source)
        if start is None:
            first_line = marker_line = 1
        else:
            marker_line = max(start + 1, 1)
            blank_after = 0
            while start + 1 + blank_after < len(lines) and not lines[start + 1 + blank_after].strip():
                blank_after += 1
            leading = len(source) - len(source.lstrip("\n"))
            first_line = start + 2 + blank_after - leading
        tags = tuple(str(t) for t in cell.metadata.get("tags", ()))
        cells.append(Cell(index, str(cell.cell_type), tags, source, first_line, marker_line))
    return Notebook(path.stem, path, dict(notebook.metadata), tuple(cells), header_end > 0)


def check_notebook(notebook: Notebook, sink: Sink, packages: tuple[str, ...] = ("checks",)) -> None:
    """The hygiene of one notebook; it may import the public API of `packages` (checks, and the
    project's own checks packages) and IPython.display."""
    path = notebook.path
    fmt = notebook.metadata.get("jupytext", {}).get("text_representation", {}).get("format_name")
    if not notebook.has_header or fmt != "percent":
        sink.error(
            path,
            1,
            "no jupytext py:percent header: start the file with the '# ---' block that "
            "`jupytext --set-formats py:percent` writes",
        )
    declared = notebook.metadata.get("drillbook", {}).get("runbook")
    if declared is not None and declared != notebook.slug:
        sink.error(
            path,
            1,
            f"the header says runbook {declared!r}, but the file is the notebook of {notebook.slug!r}",
        )
    _check_title(notebook, sink)
    _check_parameters(notebook, sink)
    for cell in notebook.cells:
        if cell.kind == "code":
            tree = _parse(cell, path, sink)
            if tree is not None:
                _check_code(cell, tree, path, sink, packages)


def _check_title(notebook: Notebook, sink: Sink) -> None:
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.kind != "markdown" or not first.source.lstrip().startswith("# "):
        sink.error(
            notebook.path,
            first.marker_line if first else 1,
            "the first cell must be a markdown title, such as '# %% [markdown]' then '# # Service down'",
        )
        return
    link = f"../docs/runbooks/{notebook.slug}.md"
    if f"({link})" not in first.source and f"({link}#" not in first.source:
        sink.error(
            notebook.path,
            first.marker_line,
            f"the title cell does not link to its page: add [the runbook]({link})",
        )


def _check_parameters(notebook: Notebook, sink: Sink) -> None:
    tagged = [cell for cell in notebook.cells if "parameters" in cell.tags]
    code = [cell for cell in notebook.cells if cell.kind == "code"]
    if not tagged:
        sink.error(
            notebook.path,
            code[0].marker_line if code else 1,
            "no cell tagged parameters: the first code cell must be '# %% tags=[\"parameters\"]' "
            'with env = "sandbox" and apply = False',
        )
        return
    for extra in tagged[1:]:
        sink.error(notebook.path, extra.marker_line, "a second cell tagged parameters: keep exactly one")
    cell = tagged[0]
    if code and code[0] is not cell:
        sink.error(notebook.path, cell.marker_line, "the parameters cell must be the first code cell")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return  # reported with the other code cells
    names: set[str] = set()
    for statement in tree.body:
        target = (
            statement.targets[0]
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1
            else None
        )
        if isinstance(statement, ast.AnnAssign):
            target = statement.target
        value = getattr(statement, "value", None)
        if isinstance(target, ast.Name):
            names.add(target.id)
        if not isinstance(target, ast.Name) or value is None or not _literal(value):
            sink.error(
                notebook.path,
                cell.line(statement.lineno),
                "the parameters cell assigns literals only, one name each (the runner overrides them)",
            )
    for name in RUN_PARAMETERS:
        if name not in names:
            sink.error(
                notebook.path,
                cell.marker_line,
                f"the parameters cell does not define {name!r}, which drillbook run sets "
                f"({', '.join(RUN_PARAMETERS)}): add {name} = {RUN_PARAMETERS[name]}",
            )


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def _parse(cell: Cell, path: Path, sink: Sink) -> ast.Module | None:
    """The cell's AST; magics and shell escapes are reported and blanked first."""
    lines = cell.source.splitlines()
    try:
        return ast.parse(cell.source)
    except SyntaxError:
        pass
    for number, text in enumerate(lines, start=1):
        match = _MAGIC.match(text)
        if match:
            what = "a shell command" if match[1] == "!" else "an IPython magic"
            sink.error(
                path,
                cell.line(number),
                f"{what} ({text.strip()}): use the checks library (native clients, argv lists) instead",
            )
            lines[number - 1] = re.sub(r"\S.*", "pass", text)
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError as exc:
        sink.error(path, cell.line(exc.lineno or 1), f"the cell does not parse: {exc.msg}")
        return None


def _module_allowed(module: str, packages: tuple[str, ...]) -> bool:
    parts = module.split(".")
    if parts[0] in packages:
        return not any(part.startswith("_") for part in parts)
    return module in _ALLOWED_MODULES


def _check_code(cell: Cell, tree: ast.Module, path: Path, sink: Sink, packages: tuple[str, ...]) -> None:
    rule = (
        f"a notebook imports only the public API of {', '.join(packages)} and IPython.display "
        "(a project's own checks packages: [tool.drillbook] checks_packages)"
    )
    mitigation = "mitigation" in cell.tags
    gated = False
    for node in ast.walk(tree):
        line = cell.line(getattr(node, "lineno", 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            sink.error(
                path, line, f"defines a function ({node.name}): logic lives in checks, where it is tested"
            )
        elif isinstance(node, ast.ClassDef):
            sink.error(
                path, line, f"defines a class ({node.name}): logic lives in checks, where it is tested"
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name, packages):
                    sink.error(path, line, f"imports {alias.name}: {rule}")
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.level or not (_module_allowed(module, packages) or module == "IPython"):
                sink.error(path, line, f"imports from {module}: {rule}")
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if alias.name.startswith("_") or (module == "IPython" and full not in _ALLOWED_MODULES):
                    sink.error(path, line, f"imports {full}: {rule}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if isinstance(func, ast.Name) and name in _FORBIDDEN_CALLS:
                sink.error(path, line, f"calls {name}(): a notebook never {_FORBIDDEN_CALLS[name]}")
            elif name == "sleep":
                sink.error(
                    path, line, "sleeps: wait for a condition to a deadline (wait_until_ok), never sleep"
                )
            elif mitigation and isinstance(func, ast.Attribute) and name == "apply":
                sink.error(
                    path, line, "calls .apply() directly: run the Action through the gate, gate.run(action)"
                )
            elif (
                isinstance(func, ast.Attribute)
                and name == "run"
                and isinstance(func.value, ast.Name)
                and node.args
            ):
                gated = True
    if mitigation and not gated:
        sink.error(
            path,
            cell.marker_line,
            "a mitigation cell must build an Action and run it through the gate: "
            "gate.run(action, evidence=[...])",
        )


def check_notebooks(root: Path, pages: list[Page], sink: Sink) -> list[Notebook]:
    """Pairing of pages and notebooks, then the hygiene of every notebook."""
    folder = root / "notebooks"
    project = Project.at(root)
    paths = sorted(folder.glob("*.py")) if folder.is_dir() else []
    slugs = {page.slug for page in pages}
    for page in pages:
        if not (folder / f"{page.slug}.py").is_file():
            sink.error(
                page.path, 1, f"the runbook has no notebook: write notebooks/{page.slug}.py (py:percent)"
            )
    for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
        sink.warning(
            path,
            1,
            "an .ipynb beside the notebooks: outputs never land in git; executed notebooks go to build/ "
            "or incidents/",
        )
    notebooks = []
    for path in paths:
        if path.stem not in slugs:
            sink.error(path, 1, f"the notebook has no page: write docs/runbooks/{path.stem}.md")
        if not SLUG.match(path.stem):
            sink.error(path, 1, f"the file name {path.name!r} is no slug: use lower-case words joined by '-'")
        notebook = read_notebook(path, sink)
        if notebook is not None:
            check_notebook(notebook, sink, ("checks", *project.checks_packages))
            notebooks.append(notebook)
    by_slug = {notebook.slug: notebook for notebook in notebooks}
    for page in pages:
        notebook = by_slug.get(page.slug)
        if notebook is None:
            continue
        _check_label_parameters(page, notebook, sink)
        tags = {tag for cell in notebook.cells for tag in cell.tags}
        for slug, tag, line in page.steps():
            if slug == page.slug and tag not in tags:
                sink.error(
                    page.path,
                    line,
                    f"runbook_steps({slug!r}, {tag!r}): no cell of notebooks/{slug}.py is tagged {tag!r}",
                )
    return notebooks


def _check_label_parameters(page: Page, notebook: Notebook, sink: Sink) -> None:
    """`label_parameters` names parameters of the notebook, never the ones only the runner sets."""
    wanted = page.data.get("label_parameters")
    if not isinstance(wanted, dict):
        return  # absent, or the schema names what is wrong
    cell = next((c for c in notebook.cells if "parameters" in c.tags), None)
    declared = _assigned(cell) if cell is not None else set()
    for label, parameter in wanted.items():
        line = page.line("label_parameters", label)
        if parameter in RUN_PARAMETERS:
            sink.error(page.path, line, f"label_parameters: {label} -> {parameter}: {parameter} is set by "
                       "the runner (an alert never sets env, apply or confirm)")  # fmt: skip
        elif parameter not in declared:
            known = ", ".join(sorted(declared - set(RUN_PARAMETERS))) or "none"
            sink.error(page.path, line, f"label_parameters: {label} -> {parameter}: notebooks/{page.slug}.py "
                       f"has no parameter {parameter!r} (its own: {known})")  # fmt: skip


def _assigned(cell: Cell) -> set[str]:
    """The names the parameters cell assigns."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return set()
    return {
        target.id
        for statement in tree.body
        for target in (
            statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
        )
        if isinstance(target, ast.Name)
    }
