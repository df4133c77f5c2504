"""The `drillbook` command: run runbooks during an incident, plan them, classify, escalate.

Exit codes (stable, for scripts; `diagnose` returns the worst of its runs):

    0  healthy: the run finished and every check was OK
    1  findings: the run finished and some check was not OK
    2  usage: a wrong option or argument
    3  refused: the gate refused a mitigation; nothing was changed and the run stopped there
    4  error: the runbook could not run (bad configuration, a cell failed, timeout), or a
       mitigation failed and the run stopped there
  130  interrupted: Ctrl-C; the running cell was stopped and the record says where
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.prompt import Prompt
from rich.table import Table

from checks import STOPPING_STATES, CheckError, ConfigError, Status, observed_change
from drillbook.errors import UsageError
from drillbook.kernels import CORE, LaunchedKernel, launch

# The runner, the policy and the drivers load inside the commands, after `run`
# and `plan` have launched their kernel: its boot overlaps those imports.
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from checks.redact import Redactor
    from drillbook.kernels import KernelPool
    from drillbook.runner import CellEvent, Execution, RecordJournal, Runbook, RunRecord

app = typer.Typer(
    help="Incident runbooks as code: run a runbook's diagnosis and gated mitigations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
incident_app = typer.Typer(help="Incident records: post-mortem drafts from the runs of an incident.")
app.add_typer(incident_app, name="incident")


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"drillbook {version('drillbook')}")
        except PackageNotFoundError:
            print("drillbook (not installed as a distribution: no version)")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Incident runbooks as code: run a runbook's diagnosis and gated mitigations."""


_STYLE = {
    Status.NOT_APPLICABLE: "dim",
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.UNKNOWN: "magenta",
    Status.CRIT: "bold red",
}
_ACTION_STYLE = {
    "planned": "cyan",
    "changed": "green",
    "unchanged": "dim",
    "skipped": "magenta",
    "held": "yellow",
    "refused": "bold red",
    "failed": "bold red",
}


class Exit(enum.IntEnum):
    HEALTHY = 0
    FINDINGS = 1
    USAGE = 2
    REFUSED = 3
    ERROR = 4
    UNOBSERVED = 5
    INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C (128 + SIGINT)


# Which exit code of several runs `diagnose` reports: the first of these that any run gave.
_GRAVEST_FIRST = (Exit.ERROR, Exit.REFUSED, Exit.FINDINGS, Exit.UNOBSERVED, Exit.HEALTHY)


class Terminal:
    """Everything the CLI prints goes through here, redacted first."""

    def __init__(self) -> None:
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self._redactor: Redactor | None = None
        self._live: Progress | None = None

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            from checks.redact import Redactor

            self._redactor = Redactor.from_policy()
        return self._redactor

    def clean(self, text: str) -> str:
        return escape(self.redactor.text(text))

    def say(self, markup: str, *values: Any, err: bool = False) -> None:
        """Print `markup` with `values` substituted ({} placeholders), values redacted and escaped."""
        text = markup.format(*(self.clean(str(v)) for v in values))
        (self.err if err else self.out).print(text)

    def table(self, table: Table) -> None:
        self.out.print(table)

    def running(self, label: str) -> None:
        """Show `label` with a spinner and the time it has run until `settled()`: on a terminal
        only, so that a long cell says which it is and for how long."""
        self.settled()
        if not self.err.is_terminal:
            return
        self._live = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=self.err, transient=True,
        )  # fmt: skip
        self._live.add_task(self.clean(label))
        self._live.start()

    def settled(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


term = Terminal()
_early_kernel: LaunchedKernel | None = None  # launched by drillbook._entry, taken by the first run


def _fail(exc: CheckError) -> typer.Exit:
    """Say what went wrong; exit 2 when the command was given something wrong, else 4."""
    term.say("[red]error:[/] {}", exc, err=True)
    return typer.Exit(Exit.USAGE if isinstance(exc, UsageError) else Exit.ERROR)


# --------------------------------------------------------------------------- list


@app.command("list")
def list_runbooks() -> None:
    """List the runbooks: severity, owner and the alerts that lead to each."""
    from drillbook.runner import Runbook, project_root
    from drillbook.site import read_runbook_pages

    try:
        root = project_root()
        pages = {p.slug: p for p in read_runbook_pages(root / "docs" / "runbooks")}
    except CheckError as exc:
        raise _fail(exc) from None
    table = Table("runbook", "title", "severity", "owner", "alerts")
    for runbook in Runbook.all(root=root):
        page = pages.get(runbook.slug)
        if page is None:
            table.add_row(runbook.slug, "[red]no page[/]", "", "", "")
            continue
        table.add_row(runbook.slug, page.title, page.severity, page.owner, ", ".join(page.alerts))
    term.table(table)


# --------------------------------------------------------------------------- run and plan


def _parameters(pairs: list[str]) -> dict[str, object]:
    from drillbook.notebooks import RUN_PARAMETERS  # the command sets these from its own options

    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p {pair!r}: write key=value, for example -p recovery_timeout_s=120")
        if (name := key.strip()) in RUN_PARAMETERS:
            raise UsageError(f"-p {pair!r}: {name} is set by --{name}, not by -p")
        values[name] = value
    return values


def _check_environment(env: str) -> dict[str, Any]:
    from checks import load_environments

    environments = load_environments()
    if env not in environments:
        raise UsageError(f"unknown environment {env!r}; environments.yml declares {', '.join(environments)}")
    spec: dict[str, Any] = environments[env]
    return spec


def _confirmation(env: str, spec: dict[str, Any], apply: bool, confirm: str) -> str:
    """The confirmation to pass on: as given, or typed at a prompt when a person is there to type it."""
    if not apply or spec["gate"] != "confirm" or confirm == env:
        return confirm
    if sys.stdin.isatty():
        term.say(f"[bold red]{env}[/] needs a confirmation to change anything.", err=True)
        return Prompt.ask(
            f"Type [bold]{env}[/] to confirm, anything else to stay in dry run", console=term.err
        )
    return confirm


def _progress(event: CellEvent) -> None:
    cell = event.cell
    if event.phase == "start":
        term.running(f"[{event.position:>2}/{event.total}] {cell.kind} running")
        return
    term.settled()
    mark = "[green]✔[/]" if cell.status == "ok" else "[red]✘[/]"
    found = [f"{r['name']} {r['status']}" for r in cell.results]
    found += [f"{a['state']} {a['action']}" for a in cell.actions]
    term.say(
        f"{mark} [{event.position:>2}/{event.total}] {{}} {cell.duration_s or 0:6.2f}s  {{}}",
        f"{cell.kind:<20}",
        "; ".join(found),
        err=True,
    )


def _execute(
    runbook: str,
    *,
    env: str,
    apply: bool,
    confirm: str,
    param: list[str] | None,
    cell_timeout: float | None,
    incident: str | None = None,
    journal_for: Callable[[Runbook], RecordJournal] | None = None,
) -> tuple[Runbook, Execution]:
    global _early_kernel
    kernel, _early_kernel = _early_kernel or launch(preload=CORE), None  # it boots while the rest loads
    try:
        with _ctrl_c_stops(kernel) as pressed:
            book, execution = _prepare_and_run(
                kernel, runbook, env, apply, confirm, param, cell_timeout, incident, journal_for
            )
    finally:
        term.settled()
        kernel.stop()
    if pressed.is_set():
        execution.record.finish(error="interrupted by the operator (Ctrl-C)", error_name="KeyboardInterrupt")
    return book, execution


def _prepare_and_run(
    kernel: LaunchedKernel,
    runbook: str,
    env: str,
    apply: bool,
    confirm: str,
    param: list[str] | None,
    cell_timeout: float | None,
    incident: str | None,
    journal_for: Callable[[Runbook], RecordJournal] | None,
) -> tuple[Runbook, Execution]:
    from drillbook.notebooks import RUN_PARAMETERS, read_notebook
    from drillbook.runner import Runbook, execute, notebook_parameters

    spec = _check_environment(env)
    parameters = _parameters(param or [])
    confirm = _confirmation(env, spec, apply, confirm)
    parameters.update(env=env, apply=apply, confirm=confirm)
    book = Runbook.find(runbook)
    _, declared = notebook_parameters(read_notebook(book.notebook))
    if missing := [name for name in RUN_PARAMETERS if name not in declared]:
        lines = ", ".join(f"{name} = {RUN_PARAMETERS[name]}" for name in missing)
        raise ConfigError(
            f"{book.notebook}: its parameters cell does not define {', '.join(missing)}, which drillbook "
            f"run sets from --{', --'.join(missing)}: add {lines}"
        )
    mode = "APPLY" if apply else "dry run"
    term.say(f"[bold]{{}}[/] in [bold]{{}}[/] ({mode})", book.slug, env, err=True)
    execution = execute(
        book,
        parameters=parameters,
        cell_timeout_s=cell_timeout,
        on_cell=_progress,
        incident=incident,
        kernel=kernel,
        journal=journal_for(book) if journal_for else None,
    )
    return book, execution


EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment from policy/environments.yml.")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Override a notebook parameter: key=value.")
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--cell-timeout", min=1.0, help="Seconds one cell may run (at least 1; whole seconds)."),
]


@app.command()
def run(
    runbook: Annotated[str, typer.Argument(help="Runbook slug (service-down) or notebook path.")],
    env: EnvOption = "sandbox",
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply mitigations instead of planning them.")
    ] = False,
    confirm: Annotated[
        str, typer.Option("--confirm", help="Name the environment to confirm changes where its gate asks.")
    ] = "",
    param: ParamOption = None,
    incident: Annotated[
        str | None, typer.Option("--incident", help="Incident id this run belongs to (for the post-mortem).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Folder for the record of this run.")] = None,
    cell_timeout: TimeoutOption = None,
) -> None:
    """Run RUNBOOK against an environment: live progress, then triage, severity and escalation.

    The JSON record is written to incidents/<time>-<runbook>-<env>/ (a folder of this run's
    own; --out names another) before the first cell runs, and again as each cell ends; at
    the end the executed notebook and a Markdown report join it, redacted, whatever the
    outcome. A run whose record cannot be written does not start.
    """
    from drillbook.runner import RecordJournal, project_root, write_outputs

    opened: list[RecordJournal] = []

    def journal_for(book: Runbook) -> RecordJournal:
        name = f"{datetime.now():%Y%m%dT%H%M%S}-{book.slug}-{env}"
        folder = output or project_root() / "incidents" / name
        opened.append(RecordJournal(folder, book.slug, term.redactor, own_folder=output is None))
        return opened[-1]

    try:
        _, execution = _execute(
            runbook, env=env, apply=apply, confirm=confirm, param=param, cell_timeout=cell_timeout,
            incident=incident, journal_for=journal_for,
        )  # fmt: skip
        record = execution.record
        paths = write_outputs(execution, opened[-1].folder, redactor=term.redactor)
    except CheckError as exc:
        raise _fail(exc) from None
    _report(record)
    term.say("record: {}", paths["report"], err=True)
    raise typer.Exit(_exit_code(record))


@contextlib.contextmanager
def _ctrl_c_stops(kernel: LaunchedKernel) -> Iterator[threading.Event]:
    """While a runbook runs, Ctrl-C stops its kernel (the run ends at the cell it was in) and
    sets the event, so that the record says the run was interrupted, not that its kernel died.

    nbclient installs handlers of its own for SIGINT on the event loop, so the signal is
    blocked in this thread and taken by a thread that waits for it alone.
    """
    pressed, done = threading.Event(), threading.Event()

    def watch() -> None:
        signal.sigwait({signal.SIGINT})
        if not done.is_set():
            pressed.set()
            kernel.stop()  # not an interrupt, which a kernel between two cells ignores

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    watcher = threading.Thread(target=watch, name="drillbook-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield pressed
    finally:
        done.set()
        if watcher.is_alive() and watcher.ident is not None:
            signal.pthread_kill(watcher.ident, signal.SIGINT)  # wakes the watcher, which now does nothing
        watcher.join(timeout=5)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@app.command()
def plan(
    runbook: Annotated[str, typer.Argument(help="Runbook slug or notebook path.")],
    env: EnvOption = "sandbox",
    param: ParamOption = None,
    cell_timeout: TimeoutOption = None,
) -> None:
    """Show every mitigation step of RUNBOOK with exactly what it would change; change nothing."""
    try:
        _, execution = _execute(
            runbook, env=env, apply=False, confirm="", param=param, cell_timeout=cell_timeout
        )
    except CheckError as exc:
        raise _fail(exc) from None
    record = execution.record
    for action in record.actions:
        term.say("\n[bold]{}[/] on {} in {}: {}", action["action"], action["target"], env, action["reason"])
        for change in action["changes"]:
            term.say("  - {}", change)
        if action["command"]:
            term.say("  command: {}", " ".join(action["command"]))
    if not record.actions:
        term.say("no mitigation step was reached")
    if record.error:
        term.say("[red]the run stopped:[/] {}", record.headline, err=True)
        raise typer.Exit(Exit.ERROR)


@app.command()
def diagnose(
    runbooks: Annotated[
        list[str] | None, typer.Argument(help="Runbook slugs or notebook paths (default: every runbook).")
    ] = None,
    env: EnvOption = "sandbox",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Runbooks run at the same time.")] = 2,
    output: Annotated[
        Path | None, typer.Option("--out", help="Folder for the records of these runs.")
    ] = None,
    cell_timeout: TimeoutOption = None,
) -> None:
    """Run the diagnosis of many runbooks at once (all by default): one line per runbook.

    A sweep to see which runbook lights up, and the catalogue's smoke test:
    mitigations are only planned, never applied, whatever the environment. Each
    runbook still gets a fresh kernel of its own. Records (redacted) go to
    incidents/<time>-diagnose-<env>/ unless --out says otherwise.
    """
    from drillbook.kernels import KernelPool
    from drillbook.runner import Runbook, new_run_folder, project_root

    root = project_root()
    with KernelPool(size=jobs, cwd=root) as pool:  # first: its kernels boot while the rest loads
        try:
            _check_environment(env)
            books = [Runbook.find(name) for name in runbooks] if runbooks else Runbook.all(root=root)
            name = f"{datetime.now():%Y%m%dT%H%M%S}-diagnose-{env}"
            folder = output or new_run_folder(root / "incidents", name)
        except CheckError as exc:
            raise _fail(exc) from None
        term.say(
            "diagnosis of {} runbooks in [bold]{}[/], {} at a time (dry run)", len(books), env, jobs, err=True
        )
        try:
            codes = _diagnose(books, env, jobs, pool, folder, cell_timeout)
        except KeyboardInterrupt:  # run_many has stopped the running cells; queued runbooks never start
            term.say("[red]interrupted[/]: no further runbook was started; records: {}", folder, err=True)
            raise typer.Exit(Exit.INTERRUPTED) from None
    term.say("records: {}", folder, err=True)
    raise typer.Exit(next(code for code in _GRAVEST_FIRST if code in codes or code is Exit.HEALTHY))


def _diagnose(
    books: list[Runbook], env: str, jobs: int, pool: KernelPool, folder: Path, cell_timeout: float | None
) -> list[Exit]:
    from drillbook.harness import run_many
    from drillbook.runner import notebook_parameters, read_notebook, write_outputs

    width = max((len(b.slug) for b in books), default=0)
    codes: list[Exit] = []
    runnable = []
    for book in books:  # a notebook that cannot run at all is named here, and the others still run
        try:
            notebook_parameters(read_notebook(book.notebook))
        except (CheckError, ValueError) as exc:
            term.say("[red]✘[/] {} [red]error[/] {}: {}", f"{book.slug:<{width}}", book.notebook, exc)
            codes.append(Exit.ERROR)
        else:
            runnable.append(book)

    def done(execution: Execution) -> None:
        record = execution.record
        write_outputs(execution, folder, redactor=term.redactor)
        code = _exit_code(record)
        codes.append(code)
        results = record.results()
        worst = [r for r in results if not r.ok and r.applies]
        if record.error:
            verdict = f"[red]error[/] {term.clean(record.headline or '')}"
        elif worst:
            verdict = "; ".join(
                f"[{_STYLE[r.status]}]{r.status.value}[/] {term.clean(r.name)}" for r in worst
            )
        else:
            verdict = "[green]OK[/]"
        if missing := list(dict.fromkeys(r.name for r in results if not r.applies)):
            verdict += f" [dim](not applicable here: {term.clean(', '.join(missing))})[/]"
        level = (record.severity or {}).get("level") or "-"
        mark = {Exit.HEALTHY: "[green]✔[/]", Exit.ERROR: "[red]✘[/]", Exit.UNOBSERVED: "[magenta]?[/]"}.get(
            code, "[yellow]![/]"
        )
        term.say(
            f"{mark} {{}} {record.duration_s or 0:6.2f}s  {{}}  {verdict}",
            f"{record.runbook:<{width}}",
            f"{level:<4}",
        )

    # apply=False whatever the notebook's default; a notebook without these parameters gets none
    parameters = {"env": env, "apply": False, "confirm": ""}
    run_many(
        runnable,
        parameters=parameters,
        jobs=jobs,
        pool=pool,
        on_done=done,
        cell_timeout_s=cell_timeout,
        only_declared=True,
    )
    return codes


def _report(record: RunRecord) -> None:
    from checks import escalation_at

    table = Table("check", "status", "summary", title="Triage")
    # A notebook without tagged diagnosis cells still gets its findings shown.
    for result in record.results("diagnosis") or record.results():
        style = _STYLE[result.status]
        table.add_row(
            term.clean(result.name), f"[{style}]{result.status.value}[/]", term.clean(result.summary)
        )
    term.table(table)
    severity = record.severity
    if severity and severity["level"]:
        term.say("Suggested severity: [bold]{}[/] ({})", severity["level"], "; ".join(severity["reasons"]))
        term.say("Escalation now: {}", escalation_at(severity["level"], timedelta(0)))
    elif severity and severity.get("unclassified"):
        term.say("[red]Suggested severity: unknown[/]: {}", severity["unclassified"], err=True)
    elif severity:
        term.say("Suggested severity: none (no trigger of the policy is met)")
    for action in record.actions:
        observed = observed_change(action.get("before"), action.get("after"))
        term.say(
            f"Action [{_ACTION_STYLE[action['state']]}]{{}}[/]: {{}} on {{}} ({{}}){{}}",
            action["state"],
            action["action"],
            action["target"],
            action["reason"],
            f"; observed {observed}" if observed else "",
            err=action["state"] in STOPPING_STATES,
        )
    for result in record.results("verify"):
        term.say(
            f"Verify: [{_STYLE[result.status]}]{{}}[/] {{}}: {{}}",
            result.status.value,
            result.name,
            result.summary,
        )
    if record.error:
        term.say("[red]the run stopped at {}[/]", record.headline, err=True)


def _exit_code(record: RunRecord) -> Exit:
    if record.error_name == "KeyboardInterrupt":
        return Exit.INTERRUPTED
    states = {action["state"] for action in record.actions}
    if "refused" in states:
        return Exit.REFUSED
    if record.error or "failed" in states:
        return Exit.ERROR
    statuses = {r.status for r in record.results()}
    if any(status.problem for status in statuses):
        return Exit.FINDINGS
    # A step skipped because its evidence could not observe has an UNKNOWN result behind it; one
    # skipped because the environment lacks what it needs is "not applicable here", and healthy.
    return Exit.UNOBSERVED if Status.UNKNOWN in statuses else Exit.HEALTHY


# --------------------------------------------------------------------------- severity and escalation


@app.command()
def severity(
    availability: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Share of requests that succeed, 0..1.")
    ] = None,
    error_ratio: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Share of requests that fail, 0..1 (0.07 is 7 %).")
    ] = None,
    p95: Annotated[
        float | None, typer.Option("--p95", min=0.0, help="95th percentile latency in seconds.")
    ] = None,
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure", "-m", help="Any measure of the policy as NAME=VALUE (saturation=0.95); repeatable."
        ),
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(
            "--condition", "-c", help="A condition of the policy that holds (credential_leak); repeatable."
        ),
    ] = None,
) -> None:
    """Suggest a severity level from measurements and conditions, by policy/severity.yml's triggers."""
    from checks import classify, load_severity

    try:
        policy = load_severity()
    except CheckError as exc:
        raise _fail(exc) from None
    given = {"availability": availability, "error_ratio": error_ratio, "p95_latency_seconds": p95}
    measurements = {k: v for k, v in given.items() if v is not None}
    try:
        measurements.update(_measures(measure or [], policy.measures))
        conditions = _conditions(condition or [], policy.conditions)
    except UsageError as exc:
        raise _fail(exc) from None
    if not measurements and not conditions:
        term.say(
            "[red]error:[/] give at least one of --availability, --error-ratio, --p95, "
            "--measure, --condition",
            err=True,
        )
        raise typer.Exit(Exit.USAGE)
    verdict = classify(measurements=measurements, conditions=conditions, policy=policy)
    if verdict.level is None:
        term.say("no incident by the policy: {}", "; ".join(verdict.reasons))
        return
    term.say("[bold]{}[/] {}: {}", verdict.level.label, verdict.level.name, "; ".join(verdict.reasons))
    term.say("{}", verdict.level.paging)


def _measures(pairs: list[str], known: Mapping[str, Any]) -> dict[str, float]:
    """`--measure NAME=VALUE` options as numbers, each naming a measure of the policy."""
    values: dict[str, float] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or name not in known:
            raise UsageError(
                f"--measure {pair!r}: write NAME=VALUE, NAME one of {', '.join(known)} (policy/severity.yml)"
            )
        try:
            values[name] = float(text)
        except ValueError:
            raise UsageError(f"--measure {pair!r}: {text!r} is not a number") from None
    return values


def _conditions(names: list[str], known: Mapping[str, str]) -> list[str]:
    """`--condition NAME` options, each naming a condition of the policy."""
    for name in names:
        if name not in known:
            raise UsageError(f"--condition {name!r}: the policy's conditions are {', '.join(known)}")
    return names


@app.command()
def escalation(
    level: Annotated[str, typer.Option("--level", help="Severity level or alias (SEV1, P0).")],
    elapsed: Annotated[str, typer.Option("--elapsed", help="Time since the incident began: 25m, 2h.")] = "0m",
) -> None:
    """Who should have been paged and told by now, by the ladder of policy/escalation.yml."""
    from checks import escalation_at, load_severity, parse_duration

    try:
        policy = load_severity()
    except CheckError as exc:
        raise _fail(exc) from None
    try:
        policy.level(level)
        since = parse_duration(elapsed)
    except CheckError as exc:  # what was typed: a level the policy lacks, a duration that does not parse
        raise _fail(UsageError(str(exc))) from None
    try:
        due = escalation_at(level, since)
    except CheckError as exc:
        raise _fail(exc) from None
    term.say("[bold]{}[/] {} after {}", due.level.label, due.level.name, elapsed)
    term.say("page:   {}", "; ".join(f"{c.name} ({c.how})" for c in due.page) or "nobody")
    term.say("notify: {}", "; ".join(f"{c.name} ({c.how})" for c in due.notify) or "nobody")
    if due.next_step_in is not None:
        term.say("next step in {}", due.next_step_in)


# --------------------------------------------------------------------------- a new runbook


@app.command()
def new(
    slug: Annotated[str, typer.Argument(help="The runbook's name: lower-case words joined by '-'.")],
    title: Annotated[str | None, typer.Option("--title", help="Its title (default: from the slug).")] = None,
    severity: Annotated[
        str, typer.Option("--severity", help="Its default level (policy/severity.yml).")
    ] = "SEV3",
    owner: Annotated[str, typer.Option("--owner", help="The owning team.")] = "platform-team",
    service: Annotated[str, typer.Option("--service", help="The service it is about.")] = "api",
) -> None:
    """Add a runbook: its page with the fixed sections and its notebook with the fixed cells.

    Every place left to write says FILL IN; `drillbook lint` names each one, file and line,
    until none is left.
    """
    import re
    from string import Template

    from checks import load_severity
    from drillbook.runner import project_root

    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        raise _fail(
            UsageError(f"{slug!r} is no runbook name: use lower-case words joined by '-', such as disk-full")
        )
    try:
        root = project_root()
        policy = load_severity()
    except CheckError as exc:
        raise _fail(exc) from None
    try:
        level = policy.level(severity).id
    except CheckError as exc:  # what was typed: a level the policy lacks
        raise _fail(UsageError(str(exc))) from None
    page, notebook = root / "docs" / "runbooks" / f"{slug}.md", root / "notebooks" / f"{slug}.py"
    if existing := [path for path in (page, notebook) if path.exists()]:
        raise _fail(UsageError(f"runbook {slug!r} exists already: {', '.join(map(str, existing))}"))
    values = {
        "slug": slug,
        "title": title or slug.replace("-", " ").capitalize(),
        "severity": level,
        "owner": owner,
        "service": service,
        "today": datetime.now().date().isoformat(),
    }
    templates = Path(__file__).parent / "templates"
    for path, template in ((page, "runbook.md.tmpl"), (notebook, "notebook.py.tmpl")):
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template((templates / template).read_text(encoding="utf-8")).substitute(values)
        path.write_text(text, encoding="utf-8")
        term.say("wrote {}", path.relative_to(root))
    term.say(
        "next: write what the page marks FILL IN, give the notebook the checks this incident needs, "
        "list the alerts and the faults it handles in the front matter, and write a drill for each "
        "fault; `drillbook lint` names every place still to do."
    )


# --------------------------------------------------------------------------- lint


@app.command()
def lint(
    root: Annotated[
        Path | None, typer.Option("--root", help="The runbook repository (default: here).")
    ] = None,
) -> None:
    """Check runbooks, notebooks, alerts, faults and templates; file:line messages, exit 1 on errors."""
    from drillbook.lint import main as lint_main

    raise typer.Exit(lint_main(["--root", str(root)] if root else []))


# --------------------------------------------------------------------------- the alert receiver


@app.command()
def receive(
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on (loopback unless you say otherwise).")
    ] = "127.0.0.1:9095",
    records: Annotated[
        Path | None, typer.Option("--records", help="Folder of incident records (default: incidents/).")
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Listen where the running sandbox's Alertmanager posts, with the token it sends.",
        ),
    ] = False,
) -> None:
    """Receive Alertmanager's webhook: diagnose each firing alert's runbook in dry run, tell people.

    Settings (environments by label, credentials, queue, notifiers) are policy/alerting.yml's.
    It never applies a mitigation: the triage says which command would.
    """
    import logging

    from drillbook.receiver import serve

    if sandbox:
        try:
            listen = _sandbox_receiver()
        except CheckError as exc:
            raise _fail(exc) from None
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise _fail(UsageError(f"--listen {listen!r}: write HOST:PORT, such as 127.0.0.1:9095"))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("drillbook").setLevel(logging.INFO)  # its events; the libraries' warnings only
    try:
        receiver, pool = _receiver(records)
    except CheckError as exc:
        raise _fail(exc) from None
    try:
        server = serve(receiver, host, int(port_text))
    except OSError as exc:
        pool.close()
        raise _fail(ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}")) from None
    receiver.start()
    term.say("drillbook receive: listening on http://{}:{}/alerts", host, server.server_address[1], err=True)
    stopped = threading.Event()

    def stop(*_: object) -> None:
        if not stopped.is_set():
            stopped.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        receiver.stop()
        pool.close()
    term.say("drillbook receive: stopped", err=True)


def _sandbox_receiver() -> str:
    """Where the running sandbox's Alertmanager posts (HOST:PORT); its token is exported under the
    variable policy/alerting.yml names, unless that variable is set already."""
    import json
    from urllib.parse import urlsplit

    from checks.targets import sandbox_state_path
    from drillbook.alerts import load_alerting

    path = sandbox_state_path()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        url, token = state["drillbook_receiver"], state["secrets"]["receiver_token"]
    except FileNotFoundError:
        raise ConfigError(
            f"--sandbox: no sandbox runs (no {path}); start it with `python -m sandbox up`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--sandbox: {path} names no receiver endpoint ({exc}); restart the sandbox"
        ) from None
    variable = load_alerting().auth.get("bearer_token_env")
    if variable is None:
        raise ConfigError("--sandbox: the sandbox's Alertmanager sends a bearer token; set receiver.auth "
                          "bearer_token_env in policy/alerting.yml")  # fmt: skip
    os.environ.setdefault(variable, token)
    return str(urlsplit(url).netloc)


def _receiver(records: Path | None) -> tuple[Any, Any]:
    """The receiver of policy/alerting.yml and its kernel pool, checked before it listens."""
    from checks import load_environments
    from drillbook.alerts import load_alerting
    from drillbook.kernels import KernelPool
    from drillbook.notify import notifiers_from_config
    from drillbook.receiver import Receiver, diagnosis, notifier, site_url
    from drillbook.runner import project_root
    from drillbook.site import read_runbook_pages

    root = project_root()
    policy = load_alerting()
    # An unset secret stops it here, not at the first page; what is set is never printed.
    redactor = term.redactor.adding(policy.credentials())
    notifiers = notifiers_from_config(policy.notifiers, redactor=redactor)
    environments = load_environments()
    pages = read_runbook_pages(root / "docs" / "runbooks")
    runbooks: dict[str, tuple[str, ...]] = {}
    for page in pages:
        for alert in page.alerts:
            runbooks[alert] = (*runbooks.get(alert, ()), page.slug)
    if not runbooks:
        raise ConfigError(
            f"no runbook under {root / 'docs' / 'runbooks'} lists an alert (front matter `alerts:`): "
            "an alert would run nothing"
        )
    pool = KernelPool(size=policy.concurrency, cwd=root)
    run = diagnosis(
        pool,
        redactor,
        gates={name: str(spec.get("gate", "apply")) for name, spec in environments.items()},
        titles={page.slug: page.title for page in pages},
        site_url=site_url(root),
        timeout_s=policy.run_timeout.total_seconds(),
    )
    receiver = Receiver(
        policy,
        runbooks=runbooks,
        label_parameters={page.slug: dict(page.label_parameters) for page in pages},
        environments=tuple(environments),
        records=(records or root / "incidents").resolve(),
        run=run,
        notify=notifier(notifiers),
        redactor=redactor,
    )
    return receiver, pool


# --------------------------------------------------------------------------- incidents


@incident_app.command("new")
def incident_new(
    title: Annotated[str, typer.Option("--title", help="What happened, in a few words.")],
    level: Annotated[str, typer.Option("--level", help="Severity level or alias.")],
    incident: Annotated[
        str | None, typer.Option("--incident", help="Only runs recorded with this --incident id.")
    ] = None,
    since: Annotated[str, typer.Option("--since", help="Runs that started within this long ago.")] = "24h",
    lead: Annotated[str, typer.Option("--lead", help="Incident commander.")] = "",
    records: Annotated[
        Path | None, typer.Option("--records", help="Folder of run records (default: incidents/).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Where to write the draft.")] = None,
) -> None:
    """Write a post-mortem draft from the template, its timeline filled from the runs' records."""
    from checks import parse_duration
    from drillbook.postmortem import draft, run_records
    from drillbook.receiver import read_timeline
    from drillbook.runner import project_root

    try:
        root = project_root()
        folder = records or root / "incidents"
        found = run_records(folder, since=parse_duration(since), incident=incident)
        alerts = list(read_timeline(folder, incident)) if incident else []
        text = draft(root, title=title, level=level, lead=lead, records=found, alert_events=alerts)
    except CheckError as exc:
        raise _fail(exc) from None
    slug = "-".join("".join(ch if ch.isalnum() else " " for ch in title.lower()).split())[:60]
    path = output or root / "incidents" / f"{datetime.now():%Y%m%d}-{slug}-postmortem.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(term.redactor.text(text), encoding="utf-8")
    tmp.replace(path)
    term.say(
        "post-mortem draft with {} runs and {} alert events in its timeline: {}",
        len(found),
        len(alerts),
        path,
    )


def main(early_kernel: LaunchedKernel | None = None) -> None:
    """The command. `early_kernel` is one launched before this module was imported (see
    drillbook._entry); `run` or `plan` uses it, and it is stopped if nothing did.

    Exits without Python's interpreter teardown: by then every record is written and
    closed and the kernel stopped, and unwinding the notebook machinery (zmq contexts,
    their threads, thousands of modules) only adds a tenth of a second before the
    prompt comes back."""
    global _early_kernel
    _early_kernel = early_kernel
    try:
        app()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        if _early_kernel is not None:
            _early_kernel.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
