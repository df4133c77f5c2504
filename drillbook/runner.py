"""The notebook runner: jupytext → parameters → nbclient → `RunRecord`.

    execution = execute(Runbook.find("service-down"), parameters={"env": "sandbox"})
    execution.record.status          # "ok" or "error"
    write_outputs(execution, Path("build/executed"))

Parameters are injected papermill-style: a cell tagged `injected-parameters`
right after the cell tagged `parameters`, assigning literals only. Only names
that the `parameters` cell declares can be overridden, and a value given as
text (from the command line) is converted to the type of the default.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import copy
import getpass
import json
import math
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from checks import (
    ACTION_MIME,
    RESULT_MIME,
    SEVERITY_MIME,
    STOPPING_STATES,
    CheckResult,
    ConfigError,
    observed_change,
    policy_dir,
)
from checks.redact import Redactor
from drillbook.errors import RecordError, UsageError
from drillbook.kernels import LaunchedKernel, launch
from drillbook.notebooks import read_notebook

T = TypeVar("T")

__all__ = [
    "CellEvent",
    "CellRecord",
    "Execution",
    "RunRecord",
    "Runbook",
    "execute",
    "inject_parameters",
    "notebook_parameters",
    "read_notebook",
    "write_outputs",
]

# IPython colours its tracebacks; records and reports are plain text.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
DEFAULT_CELL_TIMEOUT_S = 60.0
DEFAULT_NOTEBOOK_TIMEOUT_S = 600.0
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def project_root() -> Path:
    """The runbook repository: the folder that holds policy/."""
    return policy_dir().parent


@dataclass(frozen=True, slots=True)
class Runbook:
    """A runbook's notebook, found by its slug."""

    slug: str
    notebook: Path

    @classmethod
    def find(cls, name: str, *, root: Path | None = None) -> Runbook:
        """`name` is a slug (`service-down`) or a path to a notebook file."""
        path = Path(name)
        if path.suffix in (".py", ".ipynb") and path.is_file():
            return cls(path.stem, path.resolve())
        folder = (root or project_root()) / "notebooks"
        notebook = folder / f"{name}.py"
        if not notebook.is_file():
            known = ", ".join(r.slug for r in cls.all(root=root)) or "none"
            raise UsageError(f"no runbook {name!r}: {notebook} does not exist. Known runbooks: {known}")
        return cls(name, notebook)

    @classmethod
    def all(cls, *, root: Path | None = None) -> list[Runbook]:
        folder = (root or project_root()) / "notebooks"
        return [cls(p.stem, p) for p in sorted(folder.glob("*.py"))]


# Tags that tell nbclient or Jupyter how to run or show a cell, not which step it is.
EXECUTION_TAGS = frozenset(
    {"raises-exception", "skip-execution", "hide-input", "hide-output", "remove-cell", "remove-input",
     "remove-output"}
)  # fmt: skip


@dataclass(slots=True)
class CellRecord:
    """One code cell of a run: what it is, when it ran, how it ended, what it reported."""

    index: int
    tags: tuple[str, ...]
    source: str
    status: Literal["pending", "ok", "error"] = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    severity: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def kind(self) -> str:
        """The step this cell is: its own tag (diagnosis, mitigation, verify, recovery, or any
        other a runbook uses), else "setup". Tags that only say how to run or show a cell
        are not steps."""
        return next((t for t in self.tags if t not in EXECUTION_TAGS), "setup")


@dataclass(slots=True)
class RunRecord:
    """Everything a run did, in order; the source of reports and audit records."""

    runbook: str
    notebook: str
    environment: str
    parameters: dict[str, Any]
    started_at: datetime
    git_revision: str | None
    cells: list[CellRecord]
    finished_at: datetime | None = None
    status: Literal["running", "ok", "error"] = "running"
    error: str | None = None
    error_name: str | None = None
    operator: str = ""
    incident: str | None = None

    def finish(self, *, error: str | None = None, error_name: str | None = None) -> datetime:
        """Close the record: now, ok or stopped with `error`; a cell still running is stopped too."""
        self.finished_at = now = datetime.now().astimezone()
        if error is not None:
            self.status, self.error, self.error_name = "error", error, error_name or self.error_name
        elif self.status == "running":
            self.status = "ok"
        for cell in self.cells:
            if cell.started_at is not None and cell.finished_at is None:
                cell.status = "error"  # interrupted: a timeout, a dead kernel, Ctrl-C; it ran until now
                cell.finished_at = now
                cell.duration_s = round((now - cell.started_at).total_seconds(), 3)
            if cell.status == "error" and cell.error is None:
                cell.error = self.error
        return now

    @property
    def failed_cell(self) -> CellRecord | None:
        """The cell the run stopped at, if it stopped."""
        return next((c for c in self.cells if c.status == "error"), None)

    @property
    def headline(self) -> str | None:
        """One line naming where and why the run stopped: for a terminal, not a traceback."""
        if self.error is None:
            return None
        cell = self.failed_cell
        where = f"cell {cell.index} ({cell.kind})" if cell else "the notebook"
        last = self.error.strip().splitlines()[-1] if self.error.strip() else "failed"
        if self.error_name and self.error_name in last:
            return f"{where}: {last.strip()}"
        return f"{where}: {self.error.strip().splitlines()[0]}"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def results(self, kind: str | None = None) -> list[CheckResult]:
        """Every check result reported, or those of cells of one kind (`diagnosis`, `verify`)."""
        return [CheckResult.from_dict(r) for c in self.cells if kind in (None, c.kind) for r in c.results]

    @property
    def severity(self) -> dict[str, Any] | None:
        """The last severity the run suggested."""
        found = [c.severity for c in self.cells if c.severity is not None]
        return found[-1] if found else None

    @property
    def actions(self) -> list[dict[str, Any]]:
        return [a for c in self.cells for a in c.actions]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_s"] = self.duration_s
        for cell, written in zip(self.cells, data["cells"], strict=True):
            written["kind"] = cell.kind  # the step, as the terminal and the report name it
        plain: dict[str, Any] = json.loads(json.dumps(data, default=_iso))
        return plain


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class _Stopped(Exception):
    """A mitigation ended refused or failed: the run stops after its cell."""


@dataclass(frozen=True, slots=True)
class CellEvent:
    """A progress event: a code cell started or finished."""

    phase: Literal["start", "end"]
    cell: CellRecord
    position: int
    total: int


@dataclass(slots=True)
class Execution:
    """An executed notebook and the record of its run."""

    notebook: nbformat.NotebookNode
    record: RunRecord


def notebook_parameters(nb: nbformat.NotebookNode) -> tuple[int, dict[str, Any]]:
    """The index of the `parameters` cell and the literal defaults it assigns."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            defaults: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                    raise ConfigError(f"cell {index}: the parameters cell may only assign literals")
                target = node.targets[0]
                if not isinstance(target, ast.Name):
                    raise ConfigError(f"cell {index}: the parameters cell may only assign plain names")
                try:
                    defaults[target.id] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ConfigError(
                        f"cell {index}: parameter {target.id} must be a literal ({exc})"
                    ) from None
            return index, defaults
    raise ConfigError("the notebook has no cell tagged 'parameters'")


def inject_parameters(nb: nbformat.NotebookNode, overrides: Mapping[str, Any]) -> nbformat.NotebookNode:
    """A copy of `nb` with an `injected-parameters` cell after its `parameters` cell."""
    index, defaults = notebook_parameters(nb)
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise UsageError(f"unknown parameter {', '.join(unknown)}; this notebook takes {', '.join(defaults)}")
    values = {name: _coerce(name, value, defaults[name]) for name, value in overrides.items()}
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if values:
        source = "# Parameters injected for this run\n" + "".join(
            f"{name} = {value!r}\n" for name, value in values.items()
        )
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        out.cells.insert(index + 1, cell)
    return out


def _coerce(name: str, value: Any, default: Any) -> Any:
    """`value` as the type of `default`: text from a command line is parsed, other values checked."""
    if isinstance(value, str) and not isinstance(default, str):
        return _parse(name, value, default)
    widening = isinstance(default, float) and isinstance(value, int)
    if default is not None and not isinstance(value, type(default)) and not widening:
        raise UsageError(f"parameter {name}: expected {type(default).__name__}, got {type(value).__name__}")
    return value


def _parse(name: str, text: str, default: Any) -> Any:
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageError(f"parameter {name}: {text!r} is not a boolean (true/false)")
    try:
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise UsageError(f"parameter {name}: {text!r} is not a {type(default).__name__}") from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def operator() -> str:
    """Who runs this: $DRILLBOOK_OPERATOR (set it in shared shells), else user@host."""
    if named := os.environ.get("DRILLBOOK_OPERATOR"):
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def git_revision(cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def execute(
    runbook: Runbook,
    *,
    parameters: Mapping[str, Any] | None = None,
    cell_timeout_s: float | None = None,
    timeout_s: float = DEFAULT_NOTEBOOK_TIMEOUT_S,
    on_cell: Callable[[CellEvent], None] | None = None,
    incident: str | None = None,
    kernel: LaunchedKernel | None = None,
    only_declared: bool = False,
    journal: Callable[[RunRecord], None] | None = None,
) -> Execution:
    """Run `runbook`'s notebook in a fresh kernel and record every code cell.

    `journal` (a `RecordJournal`) is handed the record before the first cell runs and
    again as each cell ends: when it cannot write, nothing runs, or the run stops before
    its next cell, so that no change is ever made without a record of it.

    A cell that raises stops the run (unless tagged `raises-exception`); the
    error is kept in the record with the cell's traceback. `cell_timeout_s`
    defaults to the notebook's `drillbook.cell_timeout_s` metadata, else 60 s.
    `kernel` is a kernel launched earlier (`drillbook.kernels.launch`), so its
    boot overlapped the caller's start-up; without one, a kernel is launched
    here. Either way it serves this run only and is stopped before this returns.
    `only_declared` drops the `parameters` the notebook does not declare, instead
    of refusing them: for running many notebooks with the same settings.
    """
    root = project_root()
    source = read_notebook(runbook.notebook)
    if only_declared:
        _, declared = notebook_parameters(source)
        parameters = {k: v for k, v in (parameters or {}).items() if k in declared}
    kernel = kernel or launch(cwd=root)
    try:
        return _execute(
            runbook, source, root, kernel, parameters, cell_timeout_s, timeout_s, on_cell, incident, journal
        )
    finally:
        kernel.stop()


def _execute(
    runbook: Runbook,
    source: nbformat.NotebookNode,
    root: Path,
    kernel: LaunchedKernel,
    parameters: Mapping[str, Any] | None,
    cell_timeout_s: float | None,
    timeout_s: float,
    on_cell: Callable[[CellEvent], None] | None,
    incident: str | None,
    journal: Callable[[RunRecord], None] | None,
) -> Execution:
    parameters = dict(parameters or {})
    nb = inject_parameters(source, parameters)
    meta = nb.metadata.get("drillbook", {})
    # nbclient counts whole seconds: a fraction is rounded up, never down to no limit at all
    per_cell = math.ceil(cell_timeout_s or float(meta.get("cell_timeout_s", DEFAULT_CELL_TIMEOUT_S)))
    if per_cell <= 0:
        raise UsageError(f"a cell timeout must be positive, not {cell_timeout_s}")
    _, defaults = notebook_parameters(nb)
    effective = {**defaults, **{k: v for k, v in _assigned(nb).items() if k in defaults}}

    cells = {
        i: CellRecord(index=i, tags=tuple(c.metadata.get("tags", [])), source=c.source)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    }
    order = list(cells)
    record = RunRecord(
        runbook=runbook.slug,
        notebook=str(
            runbook.notebook.relative_to(root) if runbook.notebook.is_relative_to(root) else runbook.notebook
        ),
        environment=str(effective.get("env", "unknown")),
        parameters=effective,
        started_at=datetime.now().astimezone(),
        git_revision=git_revision(root),
        cells=list(cells.values()),
        operator=operator(),
        incident=incident,
    )
    if problem := _first_syntax_error(nb):  # found before any cell runs, not after the first ones
        record.finish(error=problem, error_name="SyntaxError")
        if journal:
            journal(record)
        return Execution(nb, record)
    if journal:
        journal(record)  # before the first cell: a run that cannot be recorded does not start
    clocks: dict[int, float] = {}

    def started(cell: Any, cell_index: int, **_: Any) -> None:
        if cell_index not in cells:  # nbclient reports markdown cells too
            return
        entry = cells[cell_index]
        entry.started_at = datetime.now().astimezone()
        clocks[cell_index] = time.perf_counter()
        if on_cell:
            on_cell(CellEvent("start", entry, order.index(cell_index) + 1, len(order)))

    def finished(cell: Any, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        if cell_index not in cells:
            return
        entry = cells[cell_index]
        entry.finished_at = datetime.now().astimezone()
        entry.duration_s = round(time.perf_counter() - clocks.get(cell_index, time.perf_counter()), 3)
        ok = execute_reply is None or execute_reply.get("content", {}).get("status") == "ok"
        entry.status = "ok" if ok else "error"
        _collect(entry, cell.get("outputs", []))
        stopping = next((a for a in entry.actions if a.get("state") in STOPPING_STATES), None)
        if stopping is not None:
            entry.status = "error"
            entry.error = (
                f"{stopping['action']} on {stopping['target']}: {stopping['state']}: {stopping['reason']}"
            )
        if journal:
            journal(record)  # raises RecordError, which stops the run before its next cell
        if on_cell:
            on_cell(CellEvent("end", entry, order.index(cell_index) + 1, len(order)))
        if stopping is not None:  # nothing after it may assume it worked (nbclient lets this through)
            raise _Stopped(entry.error)

    client = NotebookClient(
        nb,
        km=kernel.manager(),
        timeout=per_cell,
        resources={"metadata": {"path": str(root)}},
        on_cell_start=started,
        on_cell_executed=finished,
    )
    try:
        _run_to_completion(asyncio.wait_for(client.async_execute(), timeout_s))
        record.status = "ok"
    except CellExecutionError as exc:
        record.status, record.error, record.error_name = "error", _ANSI.sub("", str(exc)), exc.ename
    except _Stopped as exc:
        record.status, record.error = "error", f"the run stopped after {exc}"
    except RecordError as exc:
        record.status, record.error = "error", f"the run stopped: {exc}"
    except CellTimeoutError:
        record.status, record.error = "error", f"the cell ran longer than {per_cell:g} s and was interrupted"
    except DeadKernelError as exc:
        record.status, record.error = "error", f"the kernel died: {exc}\n{kernel.log_tail()}"
    except TimeoutError:
        record.status, record.error = "error", f"the notebook ran longer than {timeout_s:g} s"
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    closed_at = record.finish()
    nb.metadata["drillbook"] = {
        **meta,
        "executed_at": closed_at.isoformat(),
        "environment": record.environment,
        "status": record.status,
        "git_revision": record.git_revision,
        "duration_s": record.duration_s,
    }
    return Execution(nb, record)


def _first_syntax_error(nb: nbformat.NotebookNode) -> str | None:
    """The first code cell that is not valid Python, as "cell N, line L: SyntaxError: ...".

    A cell with IPython syntax (a line starting with % or !) is left to the kernel, which
    knows it; runbook notebooks have none (lint forbids them)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        if any(line.lstrip().startswith(("%", "!")) for line in cell.source.splitlines()):
            continue
        try:  # as IPython compiles a cell: a top-level `await` is allowed
            compile(
                cell.source, f"<cell {index}>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
        except SyntaxError as exc:
            return f"cell {index}, line {exc.lineno}: SyntaxError: {exc.msg}; nothing ran"
    return None


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end, even when this thread already runs an event loop
    (a Jupyter session, a browser driver, an async test): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="drillbook-run") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _assigned(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Literal values assigned by the injected-parameters cell, if any."""
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            return {
                n.targets[0].id: ast.literal_eval(n.value)
                for n in ast.parse(cell.source).body
                if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
            }
    return {}


def _collect(entry: CellRecord, outputs: list[Any]) -> None:
    for output in outputs:
        data = output.get("data", {})
        if RESULT_MIME in data:
            entry.results.append(_json(data[RESULT_MIME]))
        if SEVERITY_MIME in data:
            entry.severity = _json(data[SEVERITY_MIME])
        if ACTION_MIME in data:
            entry.actions.append(_json(data[ACTION_MIME]))


def _json(value: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return parsed


def new_run_folder(parent: Path, name: str) -> Path:
    """A folder of this run's own under `parent`: `name`, else `name-2`, `name-3`, ... (two runs
    started in the same second never share one); `RecordError` when none can be made."""
    number = 1
    while True:
        folder = parent / (name if number == 1 else f"{name}-{number}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            number += 1
            continue
        except OSError as exc:
            raise RecordError(f"cannot make the run's folder {folder}: {exc.strerror or exc}") from exc
        return folder


class RecordJournal:
    """The JSON record of one run in `folder`, redacted, rewritten whole and atomically each time.

    With `own_folder`, the first write makes a folder of this run's own from `folder`'s name
    (`new_run_folder`), so that a run refused before it starts leaves no folder behind.
    """

    def __init__(self, folder: Path, stem: str, redactor: Redactor, *, own_folder: bool = False) -> None:
        self.folder, self.stem, self.redactor = folder, stem, redactor
        self._own_folder = own_folder

    @property
    def path(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def __call__(self, record: RunRecord) -> None:
        if self._own_folder:
            self.folder, self._own_folder = new_run_folder(self.folder.parent, self.folder.name), False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.path, json.dumps(self.redactor.data(record.to_dict()), indent=2) + "\n")
        except OSError as exc:
            raise RecordError(f"cannot write the run's record {self.path}: {exc.strerror or exc}") from exc


def write_outputs(
    execution: Execution, folder: Path, *, redactor: Redactor | None = None, stem: str | None = None
) -> dict[str, Path]:
    """Write the executed notebook, the JSON record and a Markdown report, redacted, atomically."""
    redactor = redactor or Redactor.from_policy()
    stem = stem or execution.record.runbook
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordError(f"cannot make the run's folder {folder}: {exc.strerror or exc}") from exc
    notebook = nbformat.from_dict(redactor.data(execution.notebook))
    record = redactor.data(execution.record.to_dict())
    paths = {
        "notebook": folder / f"{stem}.ipynb",
        "record": folder / f"{stem}.json",
        "report": folder / f"{stem}.md",
    }
    try:
        _atomic_write(paths["notebook"], nbformat.writes(notebook))
        _atomic_write(paths["record"], json.dumps(record, indent=2) + "\n")
        _atomic_write(paths["report"], redactor.text(report_markdown(execution.record)))
    except OSError as exc:
        raise RecordError(f"cannot write the run's outputs in {folder}: {exc.strerror or exc}") from exc
    return paths


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else "-"


def report_markdown(record: RunRecord) -> str:
    """A human-readable report of one run: triage, severity, actions, cells."""
    lines = [
        f"# Run of {record.runbook} in {record.environment}",
        "",
        f"- operator: {record.operator}",
        f"- incident: {record.incident or 'none'}",
        f"- started: {_iso(record.started_at)}",
        f"- finished: {_iso(record.finished_at) if record.finished_at else 'not finished'}",
        f"- duration: {record.duration_s or 0:.1f} s",
        f"- status: {record.status}",
        f"- revision: {record.git_revision or 'unknown'}",
        f"- parameters: `{json.dumps(record.parameters)}`",
        "",
        "## Triage",
        "",
        "| check | status | summary |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r.name} | {r.status.value} | {r.summary} |" for r in record.results("diagnosis")]
    severity = record.severity
    if severity:
        lines += ["", f"Suggested severity: **{severity['level'] or 'none'}**", ""]
        lines += [f"- {reason}" for reason in severity["reasons"]]
    if record.actions:
        lines += ["", "## Actions", ""]
        for a in record.actions:
            lines.append(f"- {a['state']}: {a['action']} on {a['target']} ({a['reason']})")
            if observed := observed_change(a.get("before"), a.get("after")):
                lines.append(f"    - observed: {observed}")
            lines += [f"    - {change}" for change in a["changes"]]
    verified = record.results("verify")
    if verified:
        lines += ["", "## Verification", ""]
        lines += [f"- {r.name}: {r.status.value}, {r.summary}" for r in verified]
    lines += ["", "## Cells", "", "| # | kind | status | started | finished | seconds |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    lines += [
        f"| {c.index} | {c.kind} | {c.status} | {_clock(c.started_at)} | {_clock(c.finished_at)} "
        f"| {c.duration_s or 0:.2f} |"
        for c in record.cells
    ]
    if record.error:
        lines += ["", "## Error", "", "```", record.error, "```"]
    return "\n".join(lines) + "\n"
