"""Build time and output size of the site for 10, 100 and 1000 generated runbooks.

Each runbook is a copy of docs/runbooks/service-down.md and its notebook under a
new slug, so that every page renders its steps from a notebook as the real ones
do; its links to other runbooks point at other generated runbooks, so that the
strict build has nothing to warn about. Three configurations build the same pages:

- `drillbook`: this repository's mkdocs.yml (macros, tags, catalogue, print page,
  search, runbooks kept out of the sidebar);
- `material`: a plain Material configuration, every page in the default
  navigation, no macros (the pages' `{{ ... }}` stay as text);
- `floor`: what MkDocs and Material alone cost for these pages: no plugin at all
  (no search, no macros), the runbooks out of the navigation, the same Markdown
  extensions as ours. No configuration of MkDocs and Material builds them faster.

Material repeats the whole navigation in every page, so with every runbook in
the sidebar both the build time and the output grow with the square of the page
count. Usage:

    python benchmarks/site.py                 # 10, 100, 1000 runbooks, 3 builds each
    python benchmarks/site.py --sizes 10 100 --repeat 5
    python benchmarks/site.py --sizes 1000 --phases   # where the drillbook build's time goes

Prints one line per (configuration, size) with the median build time, the CPU
time of the build (every process of it) and the output size, then the ratios
material / drillbook and drillbook / floor, the growth per tenfold, and the
least time the largest drillbook build could take spread perfectly over this
machine's cores. `--phases` adds builds of the drillbook configuration in one
timed process: Python-Markdown's conversion (`Page.render`), the rest of reading
the pages (macros), the theme templates and writing (`_build_page`), and the rest.
Exit status 1 when the drillbook build at the largest size misses its target
(default 8 s and 100 MB, for 1000 runbooks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_SLUG = "service-down"

# The same pages for both comparison configurations, and the theme without web fonts.
_PAGES = """\
site_url: https://runbooks.example.internal/
docs_dir: docs
exclude_docs: |
  /overrides/
  !/templates/
theme:
  name: material
  font: false
"""

PLAIN_MATERIAL = (
    "site_name: drillbook (plain Material)\n"
    + _PAGES
    + """\
plugins:
  - search
markdown_extensions:
  - admonition
  - pymdownx.details
  - pymdownx.superfences
  - pymdownx.highlight
  - pymdownx.tasklist
  - tables
  - attr_list
  - md_in_html
  - toc:
      permalink: true
"""
)


def floor_config() -> str:
    """MkDocs and Material alone: no plugin, the runbooks out of the navigation, and the
    Markdown extensions of this repository's mkdocs.yml."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # mkdocs' !ENV tags
    # a SafeLoader that reads mkdocs' tags as null: it builds no object
    ours = yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506
    rest = {
        "nav": [{"Home": "index.md"}],
        "not_in_nav": "/**",
        "plugins": [],
        "markdown_extensions": ours["markdown_extensions"],
    }
    return (
        "site_name: drillbook (MkDocs and Material alone)\n" + _PAGES + yaml.safe_dump(rest, sort_keys=False)
    )


CONFIGS = (("drillbook", "mkdocs.yml"), ("material", "mkdocs-plain.yml"), ("floor", "mkdocs-floor.yml"))
# A link from one runbook to another (same folder): `](database-down.md)`
_RUNBOOK_LINK = re.compile(r"\]\((?!index\.md)([a-z0-9-]+)\.md")


@dataclass(frozen=True)
class Measurement:
    config: str
    runbooks: int
    seconds: list[float]
    cpu: list[float]  # user + system seconds of the build and every process it started
    bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def make_project(destination: Path, runbooks: int) -> Path:
    """A copy of the site's inputs with `runbooks` generated runbooks (and no others)."""
    shutil.copytree(REPO / "docs", destination / "docs", ignore=shutil.ignore_patterns("node_modules"))
    shutil.copytree(REPO / "policy", destination / "policy")
    shutil.copy2(REPO / "mkdocs.yml", destination / "mkdocs.yml")
    (destination / "notebooks").mkdir()
    page = (REPO / "docs" / "runbooks" / f"{TEMPLATE_SLUG}.md").read_text(encoding="utf-8")
    notebook = (REPO / "notebooks" / f"{TEMPLATE_SLUG}.py").read_text(encoding="utf-8")
    for existing in (destination / "docs" / "runbooks").glob("*.md"):
        if existing.name != "index.md":
            existing.unlink()
    for number in range(runbooks):
        slug = f"generated-{number:04d}"
        text = page.replace(f'"{TEMPLATE_SLUG}"', f'"{slug}"')
        text = text.replace("title: Service down", f"title: Generated runbook {number}", 1)
        text = _RUNBOOK_LINK.sub(f"](generated-{(number + 1) % runbooks:04d}.md", text)
        (destination / "docs" / "runbooks" / f"{slug}.md").write_text(text, encoding="utf-8")
        (destination / "notebooks" / f"{slug}.py").write_text(notebook, encoding="utf-8")
    (destination / "mkdocs-plain.yml").write_text(PLAIN_MATERIAL, encoding="utf-8")
    (destination / "mkdocs-floor.yml").write_text(floor_config(), encoding="utf-8")
    return destination


def tree_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(project: Path, config: str, site_dir: Path, *, phases: bool = False) -> tuple[float, float, str]:
    """One `mkdocs build` in a new process: its wall time, its CPU time (with the processes
    it started, such as the search indexer) and its standard output.

    With `phases`, the build runs under `_timed_build`, which prints its phases as JSON.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DRILLBOOK_POLICY_DIR", "DRILLBOOK_OFFLINE")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    runner = [sys.executable, __file__, "--timed-build"] if phases else [sys.executable, "-m", "mkdocs"]
    argv = [*runner, "build", "--config-file", str(project / config), "--site-dir", str(site_dir)]
    if config == "mkdocs.yml":
        argv.append("--strict")  # not with --quiet: it hides the warnings that strict counts
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{config} build of {project} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, cpu, result.stdout


def _timed_build(mkdocs_argv: list[str]) -> int:
    """Run `mkdocs <mkdocs_argv>` in this process and print, as one JSON object, its total
    seconds and those of its phases: Python-Markdown's conversion (`Page.render`), the rest
    of reading each page (front matter, macros, hooks), each page's template and file, and
    everything else once Python runs (imports, configuration, catalogue, print page, search
    index)."""
    start = time.perf_counter()
    from mkdocs.__main__ import cli
    from mkdocs.commands import build as mkdocs_build
    from mkdocs.structure.pages import Page

    spent = dict.fromkeys(("render", "populate", "build_page"), 0.0)

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - began

        return wrapper

    Page.render = timed("render", Page.render)  # type: ignore[method-assign]
    mkdocs_build._populate_page = timed("populate", mkdocs_build._populate_page)
    mkdocs_build._build_page = timed("build_page", mkdocs_build._build_page)
    status = cli.main(mkdocs_argv, standalone_mode=False)
    total = time.perf_counter() - start
    phases = {
        "markdown": spent["render"],
        "read and macros": spent["populate"] - spent["render"],
        "templates and writing": spent["build_page"],
        "rest": total - spent["populate"] - spent["build_page"],
    }
    print(json.dumps({"total": total, "phases": phases}))
    return int(status or 0)


def measure(sizes: list[int], repeat: int, *, phases: bool = False) -> list[Measurement]:
    results = []
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-") as scratch:
        for runbooks in sizes:
            project = make_project(Path(scratch) / f"project-{runbooks}", runbooks)
            for name, config in CONFIGS:
                site_dir = Path(scratch) / f"site-{name}-{runbooks}"
                seconds, cpu = [], []
                for _ in range(repeat):
                    shutil.rmtree(site_dir, ignore_errors=True)
                    elapsed, used, _ = build(project, config, site_dir)
                    seconds.append(elapsed)
                    cpu.append(used)
                measurement = Measurement(name, runbooks, seconds, cpu, tree_size(site_dir))
                results.append(measurement)
                print(
                    f"{name:9} {runbooks:5d} runbooks: median {measurement.median:6.2f} s "
                    f"(runs {', '.join(f'{s:.2f}' for s in seconds)}), "
                    f"CPU {measurement.cpu_median:6.2f} s, {measurement.bytes / 1e6:8.1f} MB",
                    flush=True,
                )
                shutil.rmtree(site_dir, ignore_errors=True)
            if phases:
                report_phases(project, Path(scratch) / f"site-phases-{runbooks}", runbooks, repeat)
            shutil.rmtree(project, ignore_errors=True)
    return results


def report_phases(project: Path, site_dir: Path, runbooks: int, repeat: int) -> None:
    """Where the time of the drillbook build goes, medians of `repeat` timed builds."""
    runs = []
    for _ in range(repeat):
        shutil.rmtree(site_dir, ignore_errors=True)
        _, _, stdout = build(project, "mkdocs.yml", site_dir, phases=True)
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    shutil.rmtree(site_dir, ignore_errors=True)
    total = statistics.median(run["total"] for run in runs)
    print(f"drillbook {runbooks:5d} runbooks, in one timed process: median {total:6.2f} s")
    for phase in runs[0]["phases"]:
        values = [run["phases"][phase] for run in runs]
        without = statistics.median(run["total"] - run["phases"][phase] for run in runs)
        print(
            f"  {phase:22} median {statistics.median(values):6.2f} s "
            f"({min(values):.2f}-{max(values):.2f} s); all but it {without:6.2f} s"
        )


def report(results: list[Measurement], *, max_seconds: float, max_mb: float) -> int:
    by = {(m.config, m.runbooks): m for m in results}
    sizes = sorted({m.runbooks for m in results})
    print("\nruntime and size, material / drillbook, and drillbook / floor:")
    for size in sizes:
        ours, plain, floor = by[("drillbook", size)], by[("material", size)], by[("floor", size)]
        print(
            f"  {size:5d} runbooks: material time x{plain.median / ours.median:5.2f}, "
            f"size x{plain.bytes / ours.bytes:5.2f}; drillbook over the floor: "
            f"time x{ours.median / floor.median:5.2f}, size x{ours.bytes / floor.bytes:5.2f}"
        )
    print("\ngrowth from one size to the next (linear = the ratio of page counts):")
    for config, _ in CONFIGS:
        for small, large in itertools.pairwise(sizes):
            a, b = by[(config, small)], by[(config, large)]
            print(
                f"  {config:9} {small:4d} -> {large:4d} (x{large / small:g} pages): "
                f"time x{b.median / a.median:5.2f}, size x{b.bytes / a.bytes:5.2f}"
            )
    largest = by[("drillbook", sizes[-1])]
    # Imported here, not at the top: a `--timed-build` process counts its imports in its time.
    from drillbook.site._search import usable_cores  # the cores the build itself counts on

    cores = usable_cores()
    print(
        f"\nat {sizes[-1]} runbooks the drillbook build uses {largest.cpu_median:.2f} s of CPU: "
        f"spread perfectly over {cores} core(s), it could not take less than "
        f"{largest.cpu_median / cores:.2f} s"
    )
    ok = largest.median <= max_seconds and largest.bytes / 1e6 <= max_mb
    print(
        f"\ntarget at {sizes[-1]} runbooks: <= {max_seconds:g} s and <= {max_mb:g} MB: "
        f"{largest.median:.2f} s, {largest.bytes / 1e6:.1f} MB -> {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3, help="builds per configuration and size (median)")
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--max-mb", type=float, default=100.0)
    parser.add_argument(
        "--phases", action="store_true", help="also time the phases of the drillbook build (more builds)"
    )
    args = parser.parse_args(argv)
    results = measure(args.sizes, args.repeat, phases=args.phases)
    return report(results, max_seconds=args.max_seconds, max_mb=args.max_mb)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--timed-build"]:  # one build of `build(..., phases=True)`
        raise SystemExit(_timed_build(sys.argv[2:]))
    raise SystemExit(main())
