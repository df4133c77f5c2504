"""The fast harness keeps what a kernel per notebook promises: real kernels, nothing shared."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from drillbook.harness import run_many
from drillbook.kernels import KernelPool, launch
from drillbook.runner import Execution, Runbook, execute

HEADER = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


def notebook(folder: Path, name: str, *cells: str) -> Runbook:
    path = folder / f"{name}.py"
    body = "".join(f"\n# %%\n{cell}\n" for cell in cells)
    path.write_text(f'{HEADER}\n# %% tags=["parameters"]\nenv = "none"\n{body}', encoding="utf-8")
    return Runbook(name, path)


def outputs(execution: Execution) -> list[str]:
    """The text/plain result of every code cell that has one."""
    texts = []
    for cell in execution.notebook.cells:
        for output in cell.get("outputs", []):
            if "text/plain" in output.get("data", {}):
                texts.append(output["data"]["text/plain"])
    return texts


def test_every_notebook_gets_its_own_new_process_and_sees_nothing_of_the_one_before(
    tmp_path: Path, scratch: Path
) -> None:
    writer = notebook(tmp_path, "writer", "import os\nleaked = 'from the writer'", "os.getpid()")
    reader = notebook(tmp_path, "reader", "import os", "'leaked' in globals()", "os.getpid()")
    runs = run_many([writer, reader, writer, reader, writer, reader], jobs=2)

    assert [r.record.status for r in runs] == ["ok"] * 6, [r.record.error for r in runs]
    pids = [int(outputs(r)[-1]) for r in runs]
    assert len(set(pids)) == 6, pids
    assert os.getpid() not in pids
    assert [outputs(r)[0] for r in runs[1::2]] == ["False"] * 3  # no reader saw the writer's global
    assert list(scratch.iterdir()) == []  # every kernel's sockets are gone


def test_kernels_start_in_the_folder_asked_for_with_the_checks_library_ready(
    tmp_path: Path, scratch: Path
) -> None:
    where = notebook(tmp_path, "where", "import os, sys", "os.getcwd()", "'checks.http' in sys.modules")
    with KernelPool(size=1, cwd=tmp_path) as pool:
        execution = execute(where, kernel=pool.take())
    assert execution.record.status == "ok", execution.record.error
    assert outputs(execution) == [repr(str(tmp_path)), "True"]


def test_a_pooled_kernel_killed_before_it_is_taken_is_replaced(tmp_path: Path, scratch: Path) -> None:
    answer = notebook(tmp_path, "answer", "6 * 7")
    with KernelPool(size=1, cwd=tmp_path) as pool:
        waiting = pool._ready[0]
        os.kill(waiting.process.pid, signal.SIGKILL)
        waiting.process.wait(timeout=10)
        execution = execute(answer, kernel=pool.take())
    assert execution.record.status == "ok", execution.record.error
    assert outputs(execution) == ["42"]


def test_without_its_factory_the_pool_still_hands_out_kernels(tmp_path: Path, scratch: Path) -> None:
    answer = notebook(tmp_path, "answer", "6 * 7")
    with KernelPool(size=1, cwd=tmp_path) as pool:
        factory = pool._factory
        assert factory is not None
        factory.kill()
        factory.wait(timeout=10)
        runs = [execute(answer, kernel=pool.take()) for _ in range(3)]
    assert [outputs(r) for r in runs] == [["42"]] * 3
    assert list(scratch.iterdir()) == []


def test_a_failing_notebook_is_recorded_and_the_others_still_run(tmp_path: Path, scratch: Path) -> None:
    broken = notebook(tmp_path, "broken", "1 / 0")
    fine = notebook(tmp_path, "fine", "'fine'")
    runs = run_many([broken, fine, broken, fine], jobs=2)
    assert [r.record.status for r in runs] == ["error", "ok", "error", "ok"]
    assert "ZeroDivisionError" in (runs[0].record.error or "")


def test_kernels_keep_no_history_of_what_they_ran(tmp_path: Path, scratch: Path) -> None:
    ipython = tmp_path / "ipython"
    env = {**os.environ, "IPYTHONDIR": str(ipython)}
    secretish = notebook(tmp_path, "history", "token = 'for-no-log-of-any-kind'", "token")
    runs = [execute(secretish, kernel=launch(cwd=tmp_path, env=env))]
    with KernelPool(size=1, cwd=tmp_path, env=env) as pool:
        runs.append(execute(secretish, kernel=pool.take()))
    assert [r.record.status for r in runs] == ["ok", "ok"], [r.record.error for r in runs]
    assert (ipython / "profile_default").is_dir()  # the kernels did use this IPython folder
    assert list(ipython.rglob("history.sqlite")) == []


def test_a_socket_folder_too_deep_for_unix_sockets_is_refused_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(OSError, match="set TMPDIR to a shorter folder"):
        launch()
    assert list(deep.iterdir()) == []  # nothing half-made is left behind
