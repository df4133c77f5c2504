"""The `drillbook` command: run runbooks during an incident, list them.

Exit codes (stable, for scripts):

    0  healthy: the run finished and every check was OK
    1  findings: the run finished and some check was not OK
    2  usage: a wrong option or argument
    3  refused: a mitigation was refused by the gate; nothing was changed
    4  error: the runbook could not run (bad configuration, a cell failed, timeout)
"""

from __future__ import annotations

import enum
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from checks import CheckError, ConfigError, Status, escalation_at
from drillbook.runner import CellEvent, Runbook, RunRecord, execute, write_outputs

app = typer.Typer(
    help="Incident runbooks as code: run a runbook's diagnosis and gated mitigations.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.UNKNOWN: "magenta", Status.CRIT: "bold red"}


class Exit(enum.IntEnum):
    HEALTHY = 0
    FINDINGS = 1
    USAGE = 2
    REFUSED = 3
    ERROR = 4


@app.command("list")
def list_runbooks() -> None:
    """List the runbooks this repository holds."""
    table = Table("runbook", "notebook")
    for runbook in Runbook.all():
        table.add_row(runbook.slug, str(runbook.notebook))
    out.print(table)


@app.command()
def run(
    runbook: Annotated[str, typer.Argument(help="Runbook slug (service-down) or notebook path.")],
    env: Annotated[
        str, typer.Option("--env", "-e", help="Environment from policy/environments.yml.")
    ] = "sandbox",
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply mitigations instead of planning them.")
    ] = False,
    confirm: Annotated[
        str, typer.Option("--confirm", help="Name the environment to confirm changes where its gate asks.")
    ] = "",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override a notebook parameter: key=value.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Folder for the executed notebook and report.")
    ] = None,
    cell_timeout: Annotated[
        float | None, typer.Option("--cell-timeout", help="Seconds one cell may run.")
    ] = None,
) -> None:
    """Run RUNBOOK against an environment: live progress, then triage, severity and escalation."""
    try:
        parameters = _parameters(param or [])
        parameters.update(env=env, apply=apply, confirm=confirm)
        book = Runbook.find(runbook)
        mode = "APPLY" if apply else "dry run"
        err.print(f"[bold]{book.slug}[/] in [bold]{env}[/] ({mode})")
        execution = execute(book, parameters=parameters, cell_timeout_s=cell_timeout, on_cell=_progress)
    except CheckError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(Exit.ERROR) from None
    record = execution.record
    folder = output or (
        book.notebook.parent.parent / "incidents" / f"{record.started_at:%Y%m%dT%H%M%S}-{book.slug}"
    )
    paths = write_outputs(execution, folder)
    _report(record)
    err.print(f"record: {paths['report']}")
    raise typer.Exit(_exit_code(record))


def _parameters(pairs: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p {pair!r}: write key=value, for example -p recovery_timeout_s=120")
        values[key.strip()] = value
    return values


def _progress(event: CellEvent) -> None:
    cell = event.cell
    if event.phase == "start":
        return
    mark = "[green]✔[/]" if cell.status == "ok" else "[red]✘[/]"
    found = "; ".join(f"{r['name']} {r['status']}" for r in cell.results)
    found += "; ".join(f"{a['state']} {a['action']}" for a in cell.actions)
    err.print(
        f"{mark} [{event.position:>2}/{event.total}] {cell.kind:<20} {cell.duration_s or 0:6.2f}s  {found}"
    )


def _report(record: RunRecord) -> None:
    table = Table("check", "status", "summary", title="Triage")
    for result in record.results("diagnosis"):
        table.add_row(result.name, f"[{_STYLE[result.status]}]{result.status.value}[/]", result.summary)
    out.print(table)
    severity = record.severity
    if severity and severity["level"]:
        out.print(f"Suggested severity: [bold]{severity['level']}[/] ({'; '.join(severity['reasons'])})")
        out.print(f"Escalation now: {escalation_at(severity['level'], timedelta(0))}")
    elif severity:
        out.print("Suggested severity: none (no trigger of the policy is met)")
    for action in record.actions:
        out.print(f"Action {action['state']}: {action['action']} on {action['target']} ({action['reason']})")
    for result in record.results("verify"):
        out.print(
            f"Verify: [{_STYLE[result.status]}]{result.status.value}[/] {result.name}: {result.summary}"
        )
    if record.error:
        err.print(f"[red]the run stopped:[/]\n{record.error}")


def _exit_code(record: RunRecord) -> Exit:
    if record.error_name == "ActionRefused":  # the kernel reports an exception by its class name
        return Exit.REFUSED
    if record.error:
        return Exit.ERROR
    return Exit.HEALTHY if all(r.ok for r in record.results()) else Exit.FINDINGS


def main() -> None:
    app()
