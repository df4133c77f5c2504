"""The harness against nbmake (serial and two workers) and papermill on the same notebooks, in one run.

    .venv/bin/python -m sandbox up
    .venv/bin/python benchmarks/harness.py [--runs 3] [--trivial 50]

The set: every runbook of notebooks/ in diagnosis mode (their defaults: the
sandbox, dry run) and `--trivial` generated notebooks of three small cells,
all written once as .ipynb to a scratch folder, so that every contender reads
the same files. Each contender is a new process per run, started the way a
person or CI starts it, and timed from start to exit:

    harness      drillbook diagnose --jobs 2 <every notebook>
    nbmake -n 0  pytest --nbmake <every notebook>
    nbmake -n 2  pytest --nbmake -n 2 <every notebook>
    papermill    one process executing every notebook with papermill, in turn

Prints the median of `--runs` runs of each and its ratio to the harness.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT_S = 900

PAPERMILL = """
import sys, pathlib, papermill
out = pathlib.Path(sys.argv[1])
for path in sys.argv[2:]:
    papermill.execute_notebook(path, str(out / pathlib.Path(path).name), progress_bar=False, cwd=str(out))
"""


def write_set(folder: Path, trivial: int) -> list[Path]:
    """The real runbooks and `trivial` generated notebooks, as .ipynb files in `folder`."""
    paths = []
    for source in sorted((ROOT / "notebooks").glob("*.py")):
        path = folder / f"{source.stem}.ipynb"
        jupytext.write(jupytext.read(source), path)
        paths.append(path)
    for n in range(trivial):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_code_cell(f"n = {n}", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("import math\nsquare = math.pow(n, 2)"),
            nbformat.v4.new_code_cell("square"),
        ]
        path = folder / f"trivial-{n:03d}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def timed(argv: list[str], what: str) -> float:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1) or (what != "harness" and done.returncode != 0):
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"{what} failed (exit {done.returncode}): is the sandbox up?\n{tail}")
    return elapsed


def contenders(notebooks: list[Path], scratch: Path) -> dict[str, list[str]]:
    files = [str(p) for p in notebooks]
    pytest = [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:drillbook"]
    pytest += ["--rootdir", str(scratch), "-c", os.devnull, "--nbmake"]
    return {
        "harness": [
            str(BIN / "drillbook"),
            "diagnose",
            "--jobs",
            "2",
            "--out",
            str(scratch / "harness"),
            *files,
        ],
        "nbmake -n 0": [*pytest, *files],
        "nbmake -n 2": [*pytest, "-n", "2", *files],
        "papermill": [str(BIN / "python"), "-c", PAPERMILL, str(scratch / "papermill"), *files],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="drillbook-bench-") as name:
        scratch = Path(name)
        (scratch / "papermill").mkdir()
        notebooks = write_set(scratch, args.trivial)
        times: dict[str, list[float]] = {}
        for _ in range(args.runs):  # interleaved, so that a noisy moment hits every contender alike
            for what, argv in contenders(notebooks, scratch).items():
                times.setdefault(what, []).append(timed(argv, what))

    real = len(notebooks) - args.trivial
    base = statistics.median(times["harness"])
    print(f"{len(notebooks)} notebooks ({real} runbooks in diagnosis mode, {args.trivial} trivial)")
    print(f"{args.runs} runs each, medians; ratio = contender / harness (baseline: the harness)")
    for what, samples in times.items():
        median = statistics.median(samples)
        runs = ", ".join(f"{t:.2f}" for t in samples)
        print(f"  {what:<12} {median:7.2f} s   {median / base:5.2f}x   ({runs})")
    serial, pair = statistics.median(times["nbmake -n 0"]), statistics.median(times["nbmake -n 2"])
    print(f"harness vs nbmake -n 0: {serial / base:.2f}x faster (target >= 3x)")
    print(f"harness vs nbmake -n 2: {pair / base:.2f}x faster (target > 1x)")


if __name__ == "__main__":
    main()
