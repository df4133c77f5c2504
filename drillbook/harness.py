"""Execute many notebooks fast: a fresh kernel each, none of them waited for, several at once.

Running notebooks one after the other pays a kernel's start-up and shutdown for
each; here kernels come from a `KernelPool` (forked ahead, with the kernel and
the checks library already imported), and `jobs` notebooks run at the same time.
Every notebook still gets its own new kernel process: nothing leaks between them.

Only read-only runs belong here (diagnosis on a healthy environment, the
catalogue's smoke run): notebooks that change the environment must run one at
a time, as the drills do.

    with KernelPool(size=2, cwd=root) as pool:
        for execution in run_many(runbooks, parameters={"env": "sandbox"}, pool=pool):
            ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drillbook.kernels import KernelPool, LaunchedKernel
from drillbook.runner import Execution, Runbook, execute, project_root

DEFAULT_JOBS = 2


def run_many(
    runbooks: Sequence[Runbook],
    *,
    parameters: Mapping[str, Any] | None = None,
    jobs: int = DEFAULT_JOBS,
    pool: KernelPool | None = None,
    on_done: Callable[[Execution], None] | None = None,
    cell_timeout_s: float | None = None,
    only_declared: bool = False,
) -> list[Execution]:
    """Execute every runbook's notebook, `jobs` at a time; the executions in the order given.

    `on_done` is called with each execution as it finishes (from a worker
    thread). A run that fails is recorded in its execution; a notebook that
    cannot run at all (no parameters cell, an unknown parameter) raises its
    ConfigError once every other run has finished. `only_declared`: see execute.
    """
    with _pool(pool, jobs) as kernels:
        runs = _Runs()
        workers = ThreadPoolExecutor(max_workers=max(1, jobs))
        futures = [
            workers.submit(_one, r, parameters, kernels, on_done, cell_timeout_s, only_declared, runs)
            for r in runbooks
        ]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:  # Ctrl-C: queued runs never start, running ones stop at their cell
            runs.interrupt()
            raise
        finally:
            workers.shutdown(wait=True, cancel_futures=True)


def submit_many(
    runbooks: Sequence[Runbook],
    *,
    parameters: Mapping[str, Any] | None = None,
    jobs: int = DEFAULT_JOBS,
    pool: KernelPool,
) -> tuple[ThreadPoolExecutor, dict[Path, Future[Execution]]]:
    """Start executing every runbook in the background; a future per notebook.

    The caller shuts the executor down (and closes `pool`) once it has every result.
    """
    workers = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="drillbook-run")
    runs = _Runs()
    futures = {
        r.notebook: workers.submit(_one, r, parameters, pool, None, None, False, runs) for r in runbooks
    }
    return workers, futures


class _Runs:
    """The kernels of the runs under way, so that Ctrl-C can stop each at its cell."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kernels: set[LaunchedKernel] = set()
        self.interrupted = threading.Event()

    @contextmanager
    def running(self, kernel: LaunchedKernel) -> Iterator[LaunchedKernel]:
        with self._lock:
            self._kernels.add(kernel)
        try:
            yield kernel
        finally:
            with self._lock:
                self._kernels.discard(kernel)

    def interrupt(self) -> None:
        self.interrupted.set()
        with self._lock:
            for kernel in self._kernels:
                kernel.stop()  # not an interrupt, which a kernel between two cells ignores


def _one(
    runbook: Runbook,
    parameters: Mapping[str, Any] | None,
    pool: KernelPool,
    on_done: Callable[[Execution], None] | None,
    cell_timeout_s: float | None,
    only_declared: bool,
    runs: _Runs,
) -> Execution:
    with runs.running(pool.take()) as kernel:
        execution = execute(
            runbook,
            parameters=parameters,
            cell_timeout_s=cell_timeout_s,
            kernel=kernel,
            only_declared=only_declared,
        )
    if runs.interrupted.is_set() and execution.record.error is not None:
        execution.record.finish(error="interrupted by the operator (Ctrl-C)", error_name="KeyboardInterrupt")
    if on_done is not None:
        on_done(execution)
    return execution


@contextmanager
def _pool(pool: KernelPool | None, jobs: int) -> Iterator[KernelPool]:
    if pool is not None:
        yield pool
        return
    with KernelPool(size=max(1, jobs), cwd=project_root()) as own:
        yield own
