"""The import rules of ARCHITECTURE.md, on every module of checks, drillbook, sandbox and notebooks.

- checks: stdlib, httpx, psycopg, redis, pyyaml; never pytest, nbclient, jupytext, mkdocs,
  drillbook or sandbox;
- notebooks: the public API of checks and IPython.display; never checks._*, drillbook, sandbox
  or shell magics;
- drillbook: checks (its public API) and its tooling; never sandbox or tests;
- sandbox: its own dependencies; never checks or drillbook;
- the generic checks (every module of checks outside checks.reference_service) never import
  checks.reference_service: what only the reference service has stays apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from tests.architecture.imports import Import, Rule, imports, violations

REPO = Path(__file__).resolve().parents[2]

CHECKS = Rule(
    "checks",
    forbidden=(
        "pytest",
        "_pytest",
        "nbclient",
        "nbformat",
        "jupytext",
        "mkdocs",
        "mkdocs_macros",
        "drillbook",
        "sandbox",
        "tests",
    ),
    # jsonschema validates policy/*.yml against their schemas (checks._policy)
    allowed=("httpx", "psycopg", "redis", "yaml", "jsonschema"),
    reasons={
        "drillbook": "the tooling depends on the library, never the reverse",
        "sandbox": "the diagnostics never know they run against a sandbox",
    },
)
DRILLBOOK = Rule(
    "drillbook",
    forbidden=("sandbox", "tests"),
    public_only=("checks",),
    reasons={"sandbox": "read sandbox/faults.yml and the rule files as data instead"},
)
SANDBOX = Rule(
    "sandbox",
    forbidden=("checks", "drillbook", "tests"),
    reasons={"checks": "the reference service never knows it is being diagnosed"},
)
NOTEBOOKS = Rule(
    "notebooks",
    forbidden=("drillbook", "sandbox"),
    allowed=("checks", "IPython"),
    public_only=("checks",),
    stdlib=False,
)
_MAGIC = re.compile(r"^\s*(?:[\w.]+\s*=\s*)?[!%]")


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _module_name(path: Path) -> tuple[str, bool]:
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _check_package(package: str, rule: Rule) -> list[str]:
    found = []
    for path in _modules(package):
        module, is_package = _module_name(path)
        found += violations(
            path.read_text(encoding="utf-8"),
            rule,
            path=str(path.relative_to(REPO)),
            module=module,
            is_package=is_package,
        )
    return found


def test_the_generic_checks_never_import_the_reference_service() -> None:
    found = []
    for path in _modules("checks"):
        module, is_package = _module_name(path)
        if module.startswith("checks.reference_service"):
            continue
        source = path.read_text(encoding="utf-8")
        found += [
            f"{path.relative_to(REPO)}:{item.line}: imports {item.module}"
            for item in imports(source, module=module, is_package=is_package)
            if item.module.startswith("checks.reference_service")
            or (item.module == "checks" and "reference_service" in item.names)
        ]
    assert found == []


@pytest.mark.parametrize(
    ("package", "rule"), [("checks", CHECKS), ("drillbook", DRILLBOOK), ("sandbox", SANDBOX)]
)
def test_the_package_imports_only_what_the_architecture_allows(package: str, rule: Rule) -> None:
    assert _modules(package), f"no module in {package}/"
    assert _check_package(package, rule) == []


def notebook_violations(path: Path) -> list[str]:
    """Imports and shell of a py:percent notebook, read as jupytext reads it (magics uncommented)."""
    where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    found = []
    for index, cell in enumerate(jupytext.read(path).cells):
        if cell.cell_type != "code":
            continue
        lines = str(cell.source).splitlines()
        for number, line in enumerate(lines, start=1):
            if _MAGIC.match(line):
                found.append(f"{where}: cell {index}, line {number}: shell or magic: {line.strip()}")
                lines[number - 1] = ""
        source = "\n".join(lines)
        found += [
            f"{where}: cell {index}, {v.split(':', 1)[1].lstrip()}"
            for v in violations(source, NOTEBOOKS, path="")
        ]
        for item in imports(source):
            if item.module.split(".")[0] == "IPython" and not _ipython_display(item):
                found.append(
                    f"{where}: cell {index}, line {item.line}: imports {item.module}: only IPython.display"
                )
    return found


def _ipython_display(item: Import) -> bool:
    return item.module == "IPython.display" or (item.module == "IPython" and item.names == ("display",))


NOTEBOOK_FILES = sorted((REPO / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_the_notebook_imports_only_the_public_checks_api(path: Path) -> None:
    assert notebook_violations(path) == []


# --------------------------------------------------------------------------- the checker itself


def test_a_forbidden_import_is_caught_with_its_line() -> None:
    source = "import httpx\n\nfrom drillbook.runner import execute\n"
    assert violations(source, CHECKS, path="checks/x.py", module="checks.x") == [
        "checks/x.py:3: imports drillbook.runner: checks never imports drillbook "
        "(the tooling depends on the library, never the reverse)"
    ]


def test_imports_hidden_in_functions_type_checking_blocks_and_import_module_are_caught() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import pytest\n"
        "def f():\n"
        "    from sandbox import get_driver\n"
        "    importlib.import_module('nbclient')\n"
    )
    found = violations(source, CHECKS, path="checks/x.py", module="checks.x")
    assert [v.split(":")[1] for v in found] == ["3", "5", "6"]


def test_a_module_outside_the_allowed_list_is_caught() -> None:
    [found] = violations("import typer\n", CHECKS, path="checks/x.py", module="checks.x")
    assert "checks may import only the standard library, httpx" in found


def test_private_checks_modules_and_names_are_caught_outside_checks() -> None:
    source = "from checks._policy import load_document\nfrom checks import _wait\nfrom checks import Gate\n"
    found = violations(source, DRILLBOOK, path="drillbook/x.py", module="drillbook.x")
    assert [v.split(":")[1] for v in found] == ["1", "2"]
    assert violations(source, CHECKS, path="checks/x.py", module="checks.x") == []


def test_relative_imports_resolve_against_the_package() -> None:
    assert [
        i.module
        for i in imports("from . import _driver\nfrom ..checks import http\n", module="sandbox.sub.m")
    ] == [
        "sandbox.sub",
        "sandbox.checks",
    ]
    [found] = violations("from .. import checks\n", SANDBOX, path="x", module="checks.sub.m")
    assert "sandbox never imports checks" in found


def test_a_notebook_with_a_private_import_a_foreign_import_and_shell_is_caught(tmp_path: Path) -> None:
    notebook = tmp_path / "bad.py"
    notebook.write_text(
        "# %%\n"
        "from checks._policy import load_document\n"
        "import subprocess\n"
        "from IPython import get_ipython\n"
        "from IPython.display import Markdown\n"
        "# !curl -s http://127.0.0.1:8000/health\n"
    )
    found = notebook_violations(notebook)
    assert len(found) == 4, found
    assert any("shell or magic: !curl" in f for f in found)
    assert any("imports subprocess" in f for f in found)
    assert any("checks._policy" in f for f in found)
    assert any("imports IPython: only IPython.display" in f for f in found)
