"""Numbers written twice: prose, alert rules and check defaults against the severity policy.

A threshold lives once, in policy/severity.yml. Everything else quotes it or is checked
against it here:

- a level's definition and examples quote a trigger as `{error_ratio_above}`: a number
  written in their prose is an error, whether it restates the trigger or contradicts it;
- an alert with `annotations.trigger` is labelled with the level the policy gives where it
  fires: just past the threshold of its expression for a measured trigger, the level that
  names the condition for a condition; the numbers of its summary are its expression's;
- a check's threshold defaults (`checks.thresholds`) are thresholds of the policy.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from checks import CheckError, SeverityPolicy
from checks.thresholds import registered
from drillbook.lint import _yaml
from drillbook.lint._alerts import Alert, Rules
from drillbook.lint._model import Sink, listing
from drillbook.lint._pages import Page

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100,
}  # fmt: skip
_NUMBER = r"(\d+(?:\.\d+)?|" + "|".join(_WORDS) + r")"
# What a stated number means, by the words around it: a share, a time, a multiple.
_PATTERNS = (
    ("ratio", re.compile(_NUMBER + r"\s*(?:%|percent\b|per cent\b)", re.IGNORECASE), 0.01),
    (
        "ratio",
        re.compile(r"\b" + _NUMBER + r"\s+(?:[a-z]+\s+){0,2}in\s+" + _NUMBER + r"\b", re.IGNORECASE),
        None,
    ),
    ("seconds", re.compile(r"\b" + _NUMBER + r"\s+(?:secs?|seconds?)\b", re.IGNORECASE), 1.0),
    ("seconds", re.compile(r"\b(\d+(?:\.\d+)?)\s*s\b"), 1.0),
    ("seconds", re.compile(r"\b" + _NUMBER + r"\s*(?:ms|milliseconds?)\b", re.IGNORECASE), 0.001),
    ("seconds", re.compile(r"\b" + _NUMBER + r"\s*(?:minutes?|mins?)\b", re.IGNORECASE), 60.0),
    ("times", re.compile(r"\b" + _NUMBER + r"\s*(?:times|x)\b", re.IGNORECASE), 1.0),
)


@dataclass(frozen=True, slots=True)
class Mention:
    """A number that prose states, with its unit: `one request in ten` is ratio 0.1."""

    text: str
    unit: str
    value: float


def _number(word: str) -> float:
    return float(_WORDS.get(word.lower(), word) if word.lower() in _WORDS else word)


def mentions(text: str) -> list[Mention]:
    """The numbers `text` states with a unit (a share, a time, a multiple), in order."""
    found: list[tuple[int, Mention]] = []
    taken: list[range] = []
    for unit, pattern, scale in _PATTERNS:
        for match in pattern.finditer(text):
            if any(match.start() in span for span in taken):
                continue
            if scale is None:  # "one in ten"
                value = _number(match[1]) / _number(match[2]) if _number(match[2]) else 0.0
            else:
                value = _number(match[1]) * scale
            found.append((match.start(), Mention(match[0], unit, value)))
            taken.append(range(match.start(), match.end()))
    return [mention for _, mention in sorted(found, key=lambda item: item[0])]


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


# --------------------------------------------------------------------------- policy prose


def check_policy_prose(root: Path, policy: SeverityPolicy, sink: Sink) -> None:
    """No number in a level's definition or examples: they quote triggers as `{key}`."""
    path = root / "policy" / "severity.yml"
    try:
        document = _yaml.read(path)
    except _yaml.YamlError:
        return  # load_policy reported it
    levels = document.data.get("levels", []) if isinstance(document.data, dict) else []
    for index, (entry, level) in enumerate(zip(levels, policy.levels, strict=False)):
        texts: list[tuple[tuple[str | int, ...], object]] = [(("definition",), entry.get("definition", ""))]
        texts += [(("examples", i), text) for i, text in enumerate(entry.get("examples", ()))]
        for keys, text in texts:
            for mention in mentions(str(text)):
                own = [
                    policy.measures[name]
                    for name, threshold in level.triggers.thresholds.items()
                    if policy.measures[name].unit == mention.unit and _same(threshold, mention.value)
                ]
                if own:
                    fix = f"the trigger {own[0].key}: write {{{own[0].key}}}, so that it follows the trigger"
                else:
                    held = listing(
                        f"{policy.measures[name].key} {policy.measures[name].format(value)}"
                        for name, value in level.triggers.thresholds.items()
                    )
                    fix = f"which no trigger of {level.id} holds ({held}): quote a trigger as {{key}}"
                sink.error(
                    path,
                    document.line("levels", index, *keys),
                    f"{level.id}: the prose states {mention.text!r}, {fix}",
                )


# --------------------------------------------------------------------------- alerts

_THRESHOLD = re.compile(r"(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*\)*\s*$")


def threshold_of(expr: str) -> tuple[str, float] | None:
    """The comparison an alert's expression ends with: (`>`, 0.1) for `... > 0.1`."""
    match = _THRESHOLD.search(expr.strip())
    return (match[1], float(match[2])) if match else None


def level_where_it_fires(policy: SeverityPolicy, measure: str, op: str, threshold: float) -> str | None:
    """The level the policy gives the first value at which `measure <op> threshold` holds."""
    spec = policy.measures[measure]
    step = 1e-9 * max(1.0, abs(threshold))
    value = threshold + step if op == ">" else threshold - step if op == "<" else threshold
    for level in policy.levels:
        limit = level.triggers.thresholds.get(measure)
        if limit is not None and spec.met(value, limit):
            return level.id
    return None


def _alert_level(alert: Alert, policy: SeverityPolicy, sink: Sink) -> tuple[str | None, str] | None:
    """The level the policy gives where `alert` fires, and why; None when that cannot be said."""
    trigger = alert.trigger or ""
    if trigger in policy.conditions:
        named = [level.id for level in policy.levels if trigger in level.triggers.conditions]
        return (named[0] if named else None), f"the condition {trigger}"
    measure = next((m for m in policy.measures.values() if m.key == trigger), None)
    if measure is None:
        known = listing([*(m.key for m in policy.measures.values()), *policy.conditions])
        sink.error(
            alert.path,
            alert.trigger_line,
            f"alert {alert.name}: trigger {trigger!r} is neither a measured trigger nor a condition of "
            f"policy/severity.yml ({known})",
        )
        return None
    compared = threshold_of(alert.expr)
    if compared is None:
        sink.error(
            alert.path,
            alert.line,
            f"alert {alert.name}: its trigger is {trigger}, but its expression does not end with a "
            "comparison to a number (`... > 0.1`): end it with the threshold it fires at",
        )
        return None
    op, threshold = compared
    if (measure.worse == "above" and op in ("<", "<=")) or (measure.worse == "below" and op in (">", ">=")):
        sink.error(
            alert.path,
            alert.line,
            f"alert {alert.name}: {measure.name} is worse {measure.worse}, but the expression fires "
            f"when it is {op} {threshold:g}: the comparison is inverted",
        )
        return None
    return level_where_it_fires(policy, measure.name, op, threshold), (
        f"{measure.name} {op} {measure.format(threshold)}"
    )


def check_alert_levels(rules: Rules, policy: SeverityPolicy, sink: Sink) -> None:
    """An alert with a trigger is labelled with the level the policy gives where it fires."""
    for alert in rules.alerts:
        if alert.trigger is None or alert.severity is None:
            continue
        found = _alert_level(alert, policy, sink)
        if found is None:
            continue
        level, where = found
        try:
            labelled = policy.level(alert.severity).id
        except CheckError:
            continue  # check_alerts names a level the policy lacks
        if level is None:
            sink.error(
                alert.path,
                alert.severity_line,
                f"alert {alert.name} fires at {where}, where policy/severity.yml gives no level: "
                "move the threshold to a trigger of the policy",
            )
        elif level != labelled:
            sink.error(
                alert.path,
                alert.severity_line,
                f"alert {alert.name} is labelled {alert.severity}, but policy/severity.yml gives {level} "
                f"at {where}: label it {level}, or move its threshold to {alert.severity}'s trigger",
            )


def check_alert_summaries(rules: Rules, sink: Sink) -> None:
    """A number the summary of an alert states is the threshold of its expression."""
    for alert in rules.alerts:
        compared = threshold_of(alert.expr)
        if compared is None:
            continue
        _, threshold = compared
        for mention in mentions(alert.summary):
            if not (_same(mention.value, threshold) or _same(mention.value * 100, threshold * 100)):
                sink.error(
                    alert.path,
                    alert.summary_line,
                    f"alert {alert.name}: the summary states {mention.text!r}, but the expression fires "
                    f"at {threshold:g}: say the expression's number",
                )


# --------------------------------------------------------------------------- check defaults


def _defaults() -> Iterator[tuple[str, Path, int, str, str, float]]:
    """(check, file, line, parameter, measure, default) for each threshold a check of the
    `checks` package declares."""
    import checks

    for module in pkgutil.walk_packages(checks.__path__, "checks."):
        importlib.import_module(module.name)
    for check, parameters in registered():
        signature = inspect.signature(check)
        source = Path(inspect.getsourcefile(check) or "?")
        line = inspect.getsourcelines(check)[1]
        for parameter, measure in parameters.items():
            default = signature.parameters[parameter].default
            if isinstance(default, (int, float)):
                yield check.__qualname__, source, line, parameter, measure, float(default)


def check_threshold_defaults(policy: SeverityPolicy, sink: Sink) -> None:
    """Each threshold default of a check is a threshold the policy holds for its measure."""
    for check, source, line, parameter, measure, default in _defaults():
        if measure not in policy.measures:
            continue  # a measure this policy does not grade: nothing to contradict
        held = {
            level.id: level.triggers.thresholds[measure]
            for level in policy.levels
            if measure in level.triggers.thresholds
        }
        if not any(_same(default, value) for value in held.values()):
            spec = policy.measures[measure]
            levels = listing(f"{level} {spec.format(value)}" for level, value in held.items())
            sink.error(
                source,
                line,
                f"{check}({parameter}={default:g}) contradicts policy/severity.yml: its {spec.key} "
                f"triggers are {levels}; make the default one of them",
            )


# --------------------------------------------------------------------------- runbook pages

_SPEAKS_OF_POLICY = re.compile(r"\bpolic(?:y|y's|ies)\b|\bthreshold|\btrigger", re.IGNORECASE)


def check_page_numbers(pages: list[Page], rules: Rules, policy: SeverityPolicy, sink: Sink) -> None:
    """A paragraph of a runbook page that speaks of the policy, a threshold or a trigger states
    only numbers that the policy's triggers or the page's alerts hold; better, it quotes them
    with `{{ severity_target(level, trigger) }}`."""
    fires_at = {alert.name: threshold_of(alert.expr) for alert in rules.alerts}
    units = {measure.unit for measure in policy.measures.values()}
    for page in pages:
        alerts = {name for name, _ in page.names("alerts")}
        held = [
            (policy.measures[name].unit, value)
            for level in policy.levels
            for name, value in level.triggers.thresholds.items()
        ]
        held += [(unit, compared[1]) for name in alerts if (compared := fires_at.get(name)) for unit in units]
        for line, paragraph in _paragraphs(page):
            if not _SPEAKS_OF_POLICY.search(paragraph):
                continue
            for mention in mentions(re.sub(r"\{\{.*?\}\}|`[^`]*`", " ", paragraph)):
                if mention.unit not in units:
                    continue
                if any(unit == mention.unit and _same(value, mention.value) for unit, value in held):
                    continue
                sink.error(
                    page.path,
                    line,
                    f"the page states {mention.text!r} beside the policy or its alert, but no trigger of "
                    "policy/severity.yml and no alert of this page holds that number: quote the trigger "
                    "with {{ severity_target(level, trigger) }}",
                )


def _paragraphs(page: Page) -> Iterator[tuple[int, str]]:
    """The page's paragraphs of prose (no code, no macro-only lines), each with its first line."""
    block: list[str] = []
    start = page.body_first_line
    fenced = False
    for offset, text in enumerate([*page.body, ""]):
        if text.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        if block and re.match(r"\s*(?:[-*+]|\d+\.)\s", text):  # a list item: a paragraph of its own
            yield start, " ".join(block)
            block = []
        if text.strip():
            if not block:
                start = page.body_first_line + offset
            block.append(text)
        elif block:
            yield start, " ".join(block)
            block = []
