"""A pytest plugin that collects runbook notebooks (`notebooks/*.py`) as test items.

Only in a drillbook project (`[tool.drillbook]` in the pyproject.toml of pytest's root
directory): installed anywhere else, it collects nothing.

Each notebook runs in a fresh kernel against the environment the
`runbook_targets` fixture names (the project's conftest provides the
sandbox's). The item fails when a cell raises, showing the cell's source and
traceback, or when a diagnosis is CRIT or UNKNOWN: a healthy environment must
raise no alarm. Executed notebooks and reports are written to
`--runbook-output` (default build/executed), where the site picks them up.

These runs only read, so they run `--runbook-jobs` at a time (default 2) with
kernels from a pool (drillbook.harness): the first notebook item starts them
all, each item reports its own. Notebook items run last, after every other
test, so that none of them overlaps a test that changes the environment.
Under pytest-xdist, a worker that gets one notebook item runs the batch of all
of them: schedule them onto one worker (this project's conftest.py does).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from checks import ConfigError, Status, Targets
from drillbook.harness import DEFAULT_JOBS, submit_many
from drillbook.kernels import KernelPool
from drillbook.project import read_table
from drillbook.runner import Execution, Runbook, project_root, write_outputs

_HEADER = "format_name: percent"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drillbook", "runbook notebooks")
    group.addoption(
        "--runbook-output",
        default=None,
        help="folder for executed notebooks and reports (default: build/executed)",
    )
    group.addoption("--no-runbooks", action="store_true", help="do not collect notebooks/*.py as tests")
    group.addoption(
        "--runbook-jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"notebooks executed at the same time (default {DEFAULT_JOBS}; 1: one after the other)",
    )


_CONFIGURED = pytest.StashKey[bool]()


def _configured(config: pytest.Config) -> bool:
    """Whether the project under test is a drillbook project (`[tool.drillbook]` in its
    pyproject.toml): anywhere else the plugin is installed, it collects nothing."""
    if _CONFIGURED not in config.stash:
        try:
            table, _ = read_table(Path(config.rootpath))
        except ConfigError:
            table = None
        config.stash[_CONFIGURED] = table is not None
    return config.stash[_CONFIGURED]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if parent.config.getoption("no_runbooks") or not _configured(parent.config):
        return None
    if file_path.suffix == ".py" and file_path.parent.name == "notebooks" and _is_notebook(file_path):
        file: NotebookFile = NotebookFile.from_parent(parent, path=file_path)
        return file
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Notebook items last and together: their runs overlap each other, never another test."""
    items.sort(key=lambda item: isinstance(item, NotebookItem))


def _is_notebook(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        head = handle.read(1024)
    return head.startswith("# ---") and _HEADER in head


class NotebookFile(pytest.File):
    """A runbook notebook: one item that executes it."""

    def collect(self) -> Iterator[pytest.Item]:
        yield NotebookItem.from_parent(self, name=self.path.stem, callobj=_run_runbook)


class NotebookItem(pytest.Function):
    """Executes one notebook; a failure shows the failing cell instead of plugin internals."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"runbook {self.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, RunbookFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class RunbookFailed(AssertionError):
    """A notebook raised, or a diagnosis was not OK against a healthy environment."""


class _Batch:
    """Every notebook item's execution, started together in the background on first use."""

    def __init__(self, session: pytest.Session, environment: str, jobs: int) -> None:
        runbooks = [Runbook(i.name, i.path) for i in session.items if isinstance(i, NotebookItem)]
        self.pool = KernelPool(size=jobs, cwd=project_root())
        self.workers, self.futures = submit_many(
            runbooks, parameters={"env": environment}, jobs=jobs, pool=self.pool
        )

    def result(self, runbook: Runbook) -> Execution:
        future: Future[Execution] = self.futures[runbook.notebook]
        return future.result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.workers.shutdown(wait=True)
        self.pool.close()


@pytest.fixture(scope="session")
def _runbook_batch(request: pytest.FixtureRequest, runbook_targets: Targets) -> Iterator[_Batch]:
    batch = _Batch(request.session, runbook_targets.environment, request.config.getoption("runbook_jobs"))
    yield batch
    batch.close()


def _run_runbook(request: pytest.FixtureRequest, runbook_targets: Targets, _runbook_batch: _Batch) -> None:
    item = request.node
    runbook = Runbook(item.name, item.path)
    execution = _runbook_batch.result(runbook)
    configured = request.config.getoption("runbook_output")
    folder = Path(configured) if configured else project_root() / "build" / "executed"
    paths = write_outputs(execution, folder)
    record = execution.record
    if record.error:
        raise RunbookFailed(
            f"{runbook.notebook}: the run stopped (report: {paths['report']})\n{record.error}"
        )
    # A healthy environment must raise no alarm: no CRIT, and no UNKNOWN (a probe that
    # cannot observe a healthy system is broken). A WARN is a hint, not an alarm.
    bad = [r for r in record.results("diagnosis") if r.status in (Status.CRIT, Status.UNKNOWN)]
    if bad:
        lines = "\n".join(f"  {r}" for r in bad)
        raise RunbookFailed(
            f"{runbook.notebook}: against a healthy {runbook_targets.environment}, no diagnosis "
            f"may be CRIT or UNKNOWN, but:\n{lines}\n(report: {paths['report']})"
        )
