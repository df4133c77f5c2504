"""The lint rule for secrets written into notebooks and pages: the redactor's shapes and
detect-secrets' detectors together, and no finding on prose."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.redact import Redactor
from drillbook.lint import run
from tests.lint.test_lint import TODAY, make_repo, messages
from tests.secret_shapes import LIBRARY_SHAPES, PROSE, SHAPES

FILES = ("notebooks/service-down.py", "docs/runbooks/service-down.md")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def _write_at_line_7(path: Path, text: str) -> None:
    """`text` inserted at line 7, commented out in a notebook (as a note in a cell would be)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    prefix = "# " if path.suffix == ".py" else ""
    lines[6:6] = [prefix + line for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _secret_findings(repo: Path) -> list[str]:
    return [m for m in messages(run(repo, today=TODAY)) if "shaped like a secret" in m]


@pytest.mark.parametrize("relative", FILES)
@pytest.mark.parametrize(("name", "text", "kind"), LIBRARY_SHAPES, ids=[s[0] for s in LIBRARY_SHAPES])
def test_a_provider_token_the_hand_list_misses_is_found_through_detect_secrets(
    repo: Path, relative: str, name: str, text: str, kind: str
) -> None:
    assert Redactor().text(text) == text, f"the hand list now knows {name}: move it to SHAPES"
    _write_at_line_7(repo / relative, text)
    found = _secret_findings(repo)
    assert [m.split(": error:")[0] for m in found] == [f"{relative}:7"]
    assert f"({kind})" in found[0]
    assert text not in found[0]  # the finding never repeats the secret


@pytest.mark.parametrize("relative", FILES)
@pytest.mark.parametrize(("name", "text", "secret"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_shape_the_redactor_masks_is_an_error_too(
    repo: Path, relative: str, name: str, text: str, secret: str
) -> None:
    _write_at_line_7(repo / relative, text)
    found = _secret_findings(repo)
    assert found, f"{name} in {relative} was not found"
    assert all(secret not in m for m in found)


@pytest.mark.parametrize("relative", FILES)
def test_prose_that_talks_about_secrets_is_no_finding(repo: Path, relative: str) -> None:
    _write_at_line_7(repo / relative, "\n".join(PROSE))
    assert _secret_findings(repo) == []
