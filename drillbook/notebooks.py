"""Reading notebooks: jupytext's parse, cached by content.

Kept apart from the runner so that the site reads notebooks the same way
without importing the notebook machinery.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

import nbformat

from checks import read_utf8

# The parameters every runbook notebook declares, which `drillbook run` sets from its
# --env, --apply and --confirm options (and `diagnose` to a dry run), with the default a
# notebook writes for each.
RUN_PARAMETERS = {"env": '"sandbox"', "apply": "False", "confirm": '""'}


def _cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "drillbook" / "notebooks"


@cache
def _jupytext_version() -> str:
    """Part of the cache key; looked up once per process (it reads the package's metadata)."""
    from importlib.metadata import version

    return version("jupytext")


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path` as jupytext reads it (py:percent or .ipynb).

    Parsed notebooks are cached under ~/.cache/drillbook/notebooks ($XDG_CACHE_HOME),
    keyed by the file's content and jupytext's version, so an unchanged runbook is
    read without importing jupytext, which alone takes a fifth of a second on the
    path to an on-call engineer's first result. A cache that cannot be read or
    written is ignored.
    """
    content = read_utf8(path).encode("utf-8")  # a file that is not UTF-8 is named, not a traceback
    key = hashlib.sha256(b"%s\0%s\0" % (_jupytext_version().encode(), path.suffix.encode()) + content)
    cached = _cache_folder() / f"{key.hexdigest()}.ipynb"
    try:
        found: nbformat.NotebookNode = nbformat.from_dict(json.loads(cached.read_text(encoding="utf-8")))
        return found
    except (OSError, ValueError):
        pass
    import jupytext

    nb: nbformat.NotebookNode = jupytext.read(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(nb), encoding="utf-8")
        tmp.replace(cached)
    except OSError:
        pass
    return nb
