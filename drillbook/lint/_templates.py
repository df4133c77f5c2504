"""Templates: every `[[placeholder]]` of docs/templates/*.md is one the form knows."""

from __future__ import annotations

import re
from pathlib import Path

from drillbook.lint import _yaml
from drillbook.lint._model import Sink, listing

TEMPLATES = Path("docs/templates")
PLACEHOLDERS = TEMPLATES / "placeholders.yml"
_PLACEHOLDER = re.compile(r"\[\[([^\[\]\n]*)\]\]")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _declared(path: Path, sink: Sink) -> set[str] | None:
    try:
        document = _yaml.read(path)
    except _yaml.YamlError as exc:
        sink.error(path, exc.line, str(exc))
        return None
    if not isinstance(document.data, list):
        sink.error(path, 1, "the placeholders must be a list of {name, label, description}")
        return None
    names: set[str] = set()
    for index, entry in enumerate(document.data):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _NAME.match(name):
            sink.error(
                path,
                document.line(index),
                "a placeholder needs a `name` of lower-case letters, digits and '_', such as incident_id",
            )
            continue
        if not isinstance(entry.get("label"), str):
            sink.error(
                path, document.line(index, "name"), f"placeholder {name!r} needs a `label` for the form"
            )
        if name in names:
            sink.error(path, document.line(index, "name"), f"placeholder {name!r} is declared twice")
        names.add(name)
    return names


def check_templates(root: Path, sink: Sink) -> None:
    folder = root / TEMPLATES
    if not folder.is_dir():
        return
    templates = sorted(folder.rglob("*.md"))
    uses = [
        (path, number, match[1])
        for path in templates
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in _PLACEHOLDER.finditer(text)
    ]
    placeholders = root / PLACEHOLDERS
    if not placeholders.is_file():
        if uses:
            path, number, _ = uses[0]
            sink.error(
                path,
                number,
                f"the templates use placeholders, but {PLACEHOLDERS}, which declares them, does not exist",
            )
        return
    known = _declared(placeholders, sink)
    if known is None:
        return
    for path, number, name in uses:
        if name not in known:
            sink.error(
                path,
                number,
                f"placeholder [[{name}]] is not one the form knows: declare it in {PLACEHOLDERS} "
                f"(known: {listing(sorted(known))})",
            )
