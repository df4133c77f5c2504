"""Beside each diagnosis step: what a human can run by hand to see the same thing.

A step's cell calls checks (`prometheus.check_error_ratio(targets, warn=...)`, or
`wait_until_ok(postgres.check_connections, targets, ...)` in a verification). Each
call is found with `ast`; its arguments are taken as the notebook gives them when they
are literals or names of its `parameters` cell, and anything else is left to the
check's default. `checks.by_hand` turns each call into the PromQL, SQL, redis-cli
command or URL it sends, and the command line that sends it in the chosen environment.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from checks import ConfigError, Targets, wait_until_ok
from checks.by_hand import Manual, manuals, shell

from ._common import SiteError, fence

BY_HAND_TITLE = "By hand: the same question without drillbook"
"""Title of the fold beside a step that shows its queries and commands."""

BY_HAND_TAGS = ("diagnosis", "verify")
"""The steps that get the fold: those that only look."""

_CHECK_PACKAGES = ("checks", "checks.reference_service")
_LANGUAGE = {"promql": "promql", "sql": "sql", "redis": "text", "http": "text"}
# wait_until_ok's own keywords; the others go to the check it polls
_WAIT_KEYWORDS = frozenset(
    name
    for name, parameter in inspect.signature(wait_until_ok).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
_UNSET = object()


@dataclass(frozen=True, slots=True)
class NotebookNames:
    """What a notebook's cells can name: the check modules it imports (by the name it uses),
    whether `wait_until_ok` is among its imports, and the values of its `parameters` cell."""

    modules: Mapping[str, ModuleType] = field(default_factory=dict)
    waits: frozenset[str] = frozenset()
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckCall:
    """One call of a check in a step: `module.check_x`, the arguments the notebook gives it
    (by name, the targets left out), and the keywords it computes, left to the check's default."""

    label: str
    check: Callable[..., Any]
    arguments: Mapping[str, Any]
    unresolved: tuple[str, ...] = ()


def notebook_names(sources: Sequence[str], parameters_source: str = "") -> NotebookNames:
    """The check modules imported in `sources` (a notebook's code cells), and the literal values
    of its parameters cell."""
    modules: dict[str, ModuleType] = {}
    waits: set[str] = set()
    for source in sources:
        for node in ast.walk(_parse(source)):
            if not isinstance(node, ast.ImportFrom) or node.module not in _CHECK_PACKAGES or node.level:
                continue
            for alias in node.names:
                name = alias.asname or alias.name
                if node.module == "checks" and alias.name == "wait_until_ok":
                    waits.add(name)
                elif not alias.name.startswith("_") and importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ):
                    modules[name] = importlib.import_module(f"{node.module}.{alias.name}")
    parameters: dict[str, Any] = {}
    for node in _parse(parameters_source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value)
            if value is not _UNSET:
                parameters[node.targets[0].id] = value
    return NotebookNames(modules, frozenset(waits), parameters)


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])  # drillbook lint reports it; no fold for it


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNSET


def check_calls(source: str, names: NotebookNames) -> list[CheckCall]:
    """Every call of a check in `source`, in order: `<module>.check_*(targets, ...)`, and the
    check a `wait_until_ok(<module>.check_*, targets, ...)` polls."""
    calls = []
    for node in ast.walk(_parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in names.waits and node.args:
            found = _check(node.args[0], names)
            if found is not None:
                keywords = [k for k in node.keywords if k.arg not in _WAIT_KEYWORDS]
                calls.append(_call(*found, node.args[2:], keywords, names))
            continue
        found = _check(node.func, names)
        if found is not None:
            calls.append(_call(*found, node.args[1:], node.keywords, names))
    return calls


def _check(node: ast.expr, names: NotebookNames) -> tuple[str, Callable[..., Any]] | None:
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return None
    module = names.modules.get(node.value.id)
    check = getattr(module, node.attr, None) if module is not None else None
    if not node.attr.startswith("check_") or not callable(check):
        return None
    return f"{node.value.id}.{node.attr}", check


def _call(
    label: str,
    check: Callable[..., Any],
    positional: Sequence[ast.expr],
    keywords: Sequence[ast.keyword],
    names: NotebookNames,
) -> CheckCall:
    """The arguments a call gives `check` (after its targets), by name: literals and parameters
    as they are; any other expression is left out, so that the check's default applies."""
    order = list(inspect.signature(check).parameters)[1:]
    given = [(order[i] if i < len(order) else f"#{i + 2}", node) for i, node in enumerate(positional)]
    given += [(k.arg, k.value) for k in keywords if k.arg is not None]
    arguments: dict[str, Any] = {}
    unresolved: list[str] = []
    for name, node in given:
        value = _literal(node)
        if value is _UNSET and isinstance(node, ast.Name) and node.id in names.parameters:
            value = names.parameters[node.id]
        if value is _UNSET:
            unresolved.append(name)
        else:
            arguments[name] = value
    return CheckCall(label, check, arguments, tuple(unresolved))


def _manual(targets: Targets, manual: Manual) -> str:
    parts = [manual.note[:1].upper() + manual.note[1:]] if manual.note else []
    if manual.kind in _LANGUAGE and manual.text:
        parts.append(fence(manual.text, _LANGUAGE[manual.kind]))
        parts.append(fence(shell(targets, manual), "sh"))
    return "\n\n".join(parts)


def render_by_hand(calls: Sequence[CheckCall], targets: Targets, *, where: str = "") -> str:
    """The fold that shows, for each call, what a human runs by hand: its note, the query as it
    is, and the command line for `targets`' environment; "" when the step calls no check."""
    if not calls:
        return ""
    parts = [
        f"In *{targets.environment}*, with the endpoints policy/environments.yml declares; a password "
        "only by the name of the variable that holds it."
    ]
    seen: set[tuple[str, str]] = set()
    unresolved: list[str] = []
    for call in calls:
        key = (call.label, repr(sorted(call.arguments.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            found = manuals(call.check, targets, call.arguments)
        except ConfigError as exc:
            raise SiteError(f"{where}: {call.label}: {exc}") from exc
        if found is None:
            parts.append(
                f"**`{call.label}`**: no by-hand form is registered for this check (`checks.by_hand`)."
            )
            continue
        parts.append(f"**`{call.label}`**")
        parts += [body for manual in found if (body := _manual(targets, manual))]
        unresolved += [name for name in call.unresolved if name not in unresolved]
    if unresolved:
        listed = ", ".join(f"`{name}`" for name in unresolved)
        parts.append(
            f"*The notebook computes {listed}: what is shown here takes the check's default instead.*"
        )
    # Kept out of the search index: every step's queries and command lines would outweigh the
    # words a responder types for a symptom, and send the search to the wrong runbook.
    fold = f'??? example "{BY_HAND_TITLE}"\n\n' + textwrap.indent("\n\n".join(parts), "    ")
    return f'<div class="drillbook-by-hand" data-search-exclude="" markdown>\n\n{fold}\n\n</div>'
