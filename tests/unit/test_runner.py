"""Parameter injection, redaction and notebook reading: what the runner writes and refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jupytext
import pytest

from checks import ConfigError
from checks.redact import MASK, Redactor
from drillbook.errors import RecordError
from drillbook.runner import (
    CellRecord,
    RunRecord,
    _first_syntax_error,
    inject_parameters,
    new_run_folder,
    notebook_parameters,
    read_notebook,
)
from tests.secret_shapes import PROSE, SHAPES

NOTEBOOK = """\
# %% [markdown]
# # A runbook

# %% tags=["parameters"]
env = "sandbox"
apply = False
window_s = 30.0
attempts = 3

# %%
print(env, apply)
"""


def notebook() -> jupytext.jupytext.NotebookNode:
    return jupytext.reads(NOTEBOOK, fmt="py:percent")


def test_defaults_are_read_from_the_parameters_cell() -> None:
    index, defaults = notebook_parameters(notebook())
    assert index == 1
    assert defaults == {"env": "sandbox", "apply": False, "window_s": 30.0, "attempts": 3}


def test_overrides_land_in_a_cell_right_after_the_parameters_cell_as_typed_literals() -> None:
    nb = inject_parameters(notebook(), {"apply": "yes", "window_s": "12", "attempts": 5, "env": "staging"})
    injected = nb.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "apply = True\n" in injected.source
    assert "window_s = 12.0\n" in injected.source
    assert "attempts = 5\n" in injected.source
    assert "env = 'staging'\n" in injected.source


def test_injection_replaces_an_earlier_injected_cell() -> None:
    once = inject_parameters(notebook(), {"apply": True})
    twice = inject_parameters(once, {"attempts": 1})
    tagged = [c for c in twice.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "apply" not in tagged[0].source


def test_text_is_never_injected_as_code() -> None:
    nb = inject_parameters(notebook(), {"env": "x'; import os; os.system('true') #"})
    assert nb.cells[2].source.splitlines()[1] == "env = \"x'; import os; os.system('true') #\""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": "1"}, "unknown parameter nope; this notebook takes env, apply, window_s, attempts"),
        ({"apply": "maybe"}, "parameter apply: 'maybe' is not a boolean"),
        ({"attempts": "three"}, "parameter attempts: 'three' is not a int"),
        ({"attempts": 2.5}, "parameter attempts: expected int, got float"),
    ],
)
def test_bad_parameters_are_refused_with_the_name(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        inject_parameters(notebook(), overrides)


def test_redaction_masks_declared_secrets_and_secret_shapes() -> None:
    redactor = Redactor(["s3cr3t-admin-token"])
    text = (
        "token s3cr3t-admin-token; dsn postgresql://app:hunter22@db:5432/app; "
        "Authorization: Bearer abcdefghijklmnop; password=letmein"
    )
    masked = redactor.text(text)
    for secret in ("s3cr3t-admin-token", "hunter22", "abcdefghijklmnop", "letmein"):
        assert secret not in masked
    assert f"postgresql://app:{MASK}@db:5432/app" in masked


def test_redaction_walks_nested_data() -> None:
    data = {"outputs": [{"text": "key sk-abcdefghijklmnopqrstuv"}], "n": 3}
    assert Redactor().data(data) == {"outputs": [{"text": f"key {MASK}"}], "n": 3}


def cells(nb: jupytext.jupytext.NotebookNode) -> list[tuple[str, str, dict[str, object]]]:
    """What a notebook says, without the cell ids jupytext draws at random on every read."""
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


def test_a_read_notebook_is_cached_by_content_and_never_served_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "runbook.py"
    path.write_text(NOTEBOOK)
    first = read_notebook(path)
    cached = list((tmp_path / "cache" / "drillbook" / "notebooks").glob("*.ipynb"))
    assert len(cached) == 1
    assert cells(read_notebook(path)) == cells(first) == cells(jupytext.read(path))

    path.write_text(NOTEBOOK.replace("attempts = 3", "attempts = 5"))  # same size, new content
    assert notebook_parameters(read_notebook(path))[1]["attempts"] == 5

    cached[0].write_text("{ not json")  # a damaged cache entry is read past, not trusted
    path.write_text(NOTEBOOK)
    assert cells(read_notebook(path)) == cells(first)


def test_an_unwritable_cache_only_costs_the_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = tmp_path / "runbook.py"
    path.write_text(NOTEBOOK)
    assert notebook_parameters(read_notebook(path))[1]["env"] == "sandbox"


@pytest.mark.parametrize(
    ("tags", "kind"),
    [
        (("diagnosis",), "diagnosis"),
        (("mitigation",), "mitigation"),
        (("recovery",), "recovery"),
        (("raises-exception", "verify"), "verify"),
        (("a-teams-own-step",), "a-teams-own-step"),
        (("raises-exception",), "setup"),
        ((), "setup"),
    ],
)
def test_a_cell_is_recorded_under_its_own_tag(tags: tuple[str, ...], kind: str) -> None:
    assert CellRecord(index=0, tags=tags, source="").kind == kind


def test_the_record_json_names_each_cells_step() -> None:
    cells = [
        CellRecord(index=i, tags=tags, source="") for i, tags in enumerate([("verify",), ("recovery",), ()])
    ]
    record = RunRecord("r", "notebooks/r.py", "sandbox", {}, datetime.now(UTC), None, cells)
    assert [c["kind"] for c in record.to_dict()["cells"]] == ["verify", "recovery", "setup"]


def test_two_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    first = new_run_folder(tmp_path / "incidents", "20261207T030000-service-down-production")
    second = new_run_folder(tmp_path / "incidents", "20261207T030000-service-down-production")
    assert first != second
    assert first.is_dir()
    assert second.is_dir()
    assert second.name == "20261207T030000-service-down-production-2"


def test_a_run_folder_that_cannot_be_made_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "incidents"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(RecordError, match=r"cannot make the run's folder .*incidents"):
        new_run_folder(blocker, "run")


def test_with_a_broken_policy_every_variable_named_like_a_secret_is_still_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "severity.yml").write_text("levels: [")
    monkeypatch.setenv("DRILLBOOK_POLICY_DIR", str(tmp_path))
    monkeypatch.setenv("PAGER_API_TOKEN", "pager-token-value-1234")
    monkeypatch.setenv("HARMLESS_SETTING", "visible-value")
    redactor = Redactor.from_policy()
    assert redactor.text("pager-token-value-1234 visible-value") == f"{MASK} visible-value"


@pytest.mark.parametrize(("name", "text", "secret"), SHAPES, ids=[shape[0] for shape in SHAPES])
def test_every_secret_shape_of_the_corpus_is_masked(name: str, text: str, secret: str) -> None:
    masked = Redactor().text(f"before {text} after")
    assert secret not in masked, name
    assert MASK in masked
    assert masked.startswith("before ")


@pytest.mark.parametrize("text", PROSE)
def test_prose_that_names_a_secret_is_left_as_written(text: str) -> None:
    assert Redactor().text(text) == text


def test_a_cell_with_a_top_level_await_is_valid_as_ipython_runs_it() -> None:
    nb = jupytext.reads(NOTEBOOK + "\n# %%\nimport asyncio\nawait asyncio.sleep(0)\n", fmt="py:percent")
    assert _first_syntax_error(nb) is None
    broken = jupytext.reads(NOTEBOOK + "\n# %%\nif True\n    pass\n", fmt="py:percent")
    assert _first_syntax_error(broken) == "cell 3, line 1: SyntaxError: expected ':'; nothing ran"
