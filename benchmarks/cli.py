"""`drillbook run` against papermill on the same runbook, in one process, printed as medians and ratios.

    .venv/bin/python -m sandbox up
    .venv/bin/python benchmarks/cli.py [--runbook service-down] [--runs 5]

Measured from the moment the command is started (a new process each time, as
an on-call engineer starts it): the time until the first check result is
printed, and the total time until the process exits. papermill executes the
same notebook, converted once to .ipynb, with the same parameters; it prints
no result while running, so only its total is comparable.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def drillbook_run(runbook: str, out: Path) -> tuple[float, float]:
    """(seconds to the first diagnosis result line, seconds to exit)."""
    argv = [str(BIN / "drillbook"), "run", runbook, "--out", str(out)]
    started = time.perf_counter()
    first: float | None = None
    with subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if (
                first is None
                and "diagnosis" in line
                and (" OK" in line or " CRIT" in line or " WARN" in line)
            ):
                first = time.perf_counter() - started
        code = proc.wait(timeout=300)
    total = time.perf_counter() - started
    if code not in (0, 1) or first is None:
        raise SystemExit(f"drillbook run exited {code} without a diagnosis result: is the sandbox up?")
    return first, total


def papermill_run(notebook: Path, out: Path) -> float:
    argv = [str(BIN / "papermill"), str(notebook), str(out), "-p", "env", "sandbox", "--cwd", str(ROOT)]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"papermill failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runbook", default="service-down")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        notebook = folder / f"{args.runbook}.ipynb"
        jupytext.write(jupytext.read(ROOT / "notebooks" / f"{args.runbook}.py"), notebook)
        drillbook_runs = [drillbook_run(args.runbook, folder / f"run-{i}") for i in range(args.runs)]
        papermill_runs = [papermill_run(notebook, folder / f"pm-{i}.ipynb") for i in range(args.runs)]

    first = statistics.median(r[0] for r in drillbook_runs)
    total = statistics.median(r[1] for r in drillbook_runs)
    baseline = statistics.median(papermill_runs)
    print(f"runbook {args.runbook}, {args.runs} runs each, medians (baseline: papermill)")
    print(f"  drillbook run  first result  {first:6.2f} s   (target <= 0.70 s)")
    print(f"  drillbook run  total         {total:6.2f} s")
    print(f"  papermill      total         {baseline:6.2f} s")
    print(f"  ratio drillbook / papermill  {total / baseline:6.2f}     (target <= 0.70)")


if __name__ == "__main__":
    main()
