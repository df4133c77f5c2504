"""No secret reaches the site: a runbook page, the print page or the search index.

A notebook's source and the outputs of its verified run and of its drills are what the site
renders from a runbook; here all of them carry every shape of tests/secret_shapes.py, and the built site
must hold none of them.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from tests.docs.test_site import built, copy_project, mkdocs_build
from tests.secret_shapes import SHAPES

SLUG = "service-down"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("project-secrets"))
    notebook = project / "notebooks" / f"{SLUG}.py"
    leaks = "\n".join(f"# {name}: {text}" for name, text, _ in SHAPES).replace("\n-----", "\n# -----")
    leaks = "\n".join(line if line.startswith("#") else f"# {line}" for line in leaks.splitlines())
    text = notebook.read_text(encoding="utf-8")
    marker = '# %% tags=["diagnosis"]\n'
    notebook.write_text(text.replace(marker, f"{marker}{leaks}\n", 1), encoding="utf-8")
    executed = jupytext.read(notebook)
    executed.metadata["drillbook"] = {"executed_at": "2026-12-07T03:00:00+00:00", "status": "ok"}
    every = "\n".join(text for _, text, _ in SHAPES)
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=every)]
            cell.execution_count = 1
    target = project / "build" / "executed" / f"{SLUG}.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(executed, target)
    # A drill's notebook shows on the page too (its evidence, under "Last verified").
    drill = project / "build" / "drills" / f"{SLUG}--{SLUG}.ipynb"
    drill.parent.mkdir(parents=True)
    nbformat.write(executed, drill)
    site_dir = tmp_path_factory.mktemp("site-secrets")
    return built(mkdocs_build(project, site_dir), site_dir)


@pytest.mark.parametrize(
    "exit", [f"runbooks/{SLUG}/index.html", "print/index.html", "search/search_index.json"]
)
def test_no_secret_of_the_corpus_reaches_the_site(site: Path, exit: str) -> None:
    text = (site / exit).read_text(encoding="utf-8")
    assert "ALTER ROLE app PASSWORD" in text or exit.endswith(".json"), "the steps are on the page"
    leaked = [name for name, _, secret in SHAPES if secret in text]
    assert leaked == [], f"{exit} shows {leaked}"


def test_the_drill_evidence_is_on_the_page_masked(site: Path) -> None:
    text = (site / f"runbooks/{SLUG}/index.html").read_text(encoding="utf-8")
    assert "Drill passed: fault service-down" in text
