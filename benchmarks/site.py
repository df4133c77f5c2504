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

Prints one line per (configuration, size) with the median build time and the
output size, then the ratios material / drillbook and drillbook / floor, and the
growth per tenfold.
Exit status 1 when the drillbook build at the largest size misses its target
(default 8 s and 100 MB, for 1000 runbooks).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
    bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


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


def build(project: Path, config: str, site_dir: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("DRILLBOOK_POLICY_DIR", "DRILLBOOK_OFFLINE")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "mkdocs", "build", "--config-file", str(project / config),
            "--site-dir", str(site_dir)]  # fmt: skip
    if config == "mkdocs.yml":
        argv.append("--strict")  # not with --quiet: it hides the warnings that strict counts
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{config} build of {project} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def measure(sizes: list[int], repeat: int) -> list[Measurement]:
    results = []
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-") as scratch:
        for runbooks in sizes:
            project = make_project(Path(scratch) / f"project-{runbooks}", runbooks)
            for name, config in CONFIGS:
                site_dir = Path(scratch) / f"site-{name}-{runbooks}"
                seconds = []
                for _ in range(repeat):
                    shutil.rmtree(site_dir, ignore_errors=True)
                    seconds.append(build(project, config, site_dir))
                measurement = Measurement(name, runbooks, seconds, tree_size(site_dir))
                results.append(measurement)
                print(
                    f"{name:9} {runbooks:5d} runbooks: median {measurement.median:6.2f} s "
                    f"(runs {', '.join(f'{s:.2f}' for s in seconds)}), {measurement.bytes / 1e6:8.1f} MB",
                    flush=True,
                )
                shutil.rmtree(site_dir, ignore_errors=True)
            shutil.rmtree(project, ignore_errors=True)
    return results


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
    args = parser.parse_args(argv)
    return report(measure(args.sizes, args.repeat), max_seconds=args.max_seconds, max_mb=args.max_mb)


if __name__ == "__main__":
    raise SystemExit(main())
