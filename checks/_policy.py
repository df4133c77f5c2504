"""Loading policy/*.yml: validated against their JSON Schemas, errors with file and line."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from checks._errors import ConfigError
from checks._files import read_utf8

POLICY_DIR_VARIABLE = "DRILLBOOK_POLICY_DIR"
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`"15m"` → 15 minutes. Units: s, m, h, d."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(f"{text!r} is not a duration: write a number and a unit, such as 15m, 4h or 1d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def format_duration(value: timedelta) -> str:
    """15 minutes → `"15m"`, the shortest exact form in the policy's notation."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def policy_dir() -> Path:
    """The policy folder: $DRILLBOOK_POLICY_DIR, else the nearest `policy/` above the working directory.

    A checkout installed in development mode also finds the `policy/` beside the package.
    """
    configured = os.environ.get(POLICY_DIR_VARIABLE)
    if configured:
        path = Path(configured)
        if not (path / "severity.yml").is_file():
            raise ConfigError(f"{POLICY_DIR_VARIABLE}={configured} holds no severity.yml")
        return path
    candidates = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent]
    for base in candidates:
        if (base / "policy" / "severity.yml").is_file():
            return base / "policy"
    raise ConfigError(
        "no policy/ folder found above the working directory. "
        f"Hint: run from the runbook repository, or set {POLICY_DIR_VARIABLE}."
    )


def load_document(path: Path) -> Any:
    """Read a policy YAML file and validate it against `<name>.schema.json` beside it."""
    schema_path = path.with_name(path.stem + ".schema.json")
    text = read_utf8(path)
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("\n".join(_describe(path, root, error) for error in errors))
    return data


def _describe(path: Path, root: yaml.Node | None, error: jsonschema.ValidationError) -> str:
    keys = list(error.absolute_path)
    line = _line_of(root, keys)
    where = f"{path}:{line}" if line else str(path)
    key = _dotted(keys) or "(top level)"
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    hint = f" (expected: {expected})" if expected else ""
    return f"{where}: {key}: {error.message}{hint}"


def _dotted(keys: Sequence[str | int]) -> str:
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _line_of(node: yaml.Node | None, keys: Sequence[str | int]) -> int | None:
    """The 1-based line of the value at `keys` in a composed YAML tree, or of its nearest parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in keys:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
        if child is None:
            return line
        node, line = child, child.start_mark.line + 1
    return line


@dataclass(frozen=True, slots=True)
class Measure:
    """A number checks report that severity triggers read (policy/severity.yml `measures`)."""

    name: str
    worse: Literal["above", "below"]
    unit: Literal["ratio", "seconds", "times"]
    description: str

    @property
    def key(self) -> str:
        """The name of this measure's triggers: `error_ratio_above`."""
        return f"{self.name}_{self.worse}"

    def met(self, value: float, threshold: float) -> bool:
        """Whether `value` is past `threshold` on the bad side."""
        return value > threshold if self.worse == "above" else value < threshold

    def worst(self, values: Iterable[float]) -> float:
        """The worst of several readings."""
        return max(values) if self.worse == "above" else min(values)

    def format(self, value: float) -> str:
        """`value` in its unit, as prose: `10 %`, `7 s`, `1.5 times`."""
        if self.unit == "ratio":
            return f"{value * 100:g} %"
        if self.unit == "seconds":
            return f"{value:g} s"
        return f"{value:g} times"


@dataclass(frozen=True, slots=True)
class Triggers:
    """What makes an incident at least this severe: a measure past its threshold (`thresholds`,
    measure name to number, in policy order), or one of `conditions` reported by a check."""

    thresholds: Mapping[str, float] = field(default_factory=dict, hash=False)
    conditions: frozenset[str] = frozenset()

    def threshold(self, measure: str) -> float:
        """This level's threshold of `measure`; a ConfigError when the level has none."""
        if measure not in self.thresholds:
            known = ", ".join(self.thresholds) or "none"
            raise ConfigError(f"this level has no {measure} trigger (its measured triggers: {known})")
        return self.thresholds[measure]


@dataclass(frozen=True, slots=True)
class Level:
    """One severity level of the policy."""

    id: str
    aliases: tuple[str, ...]
    name: str
    definition: str
    examples: tuple[str, ...]
    acknowledge_within: timedelta
    resolve_within: timedelta
    update_every: timedelta
    paging: str
    page: bool
    triggers: Triggers

    @property
    def label(self) -> str:
        """`SEV1 (P0)`."""
        return f"{self.id} ({', '.join(self.aliases)})" if self.aliases else self.id


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the policy's sources disagreed: what was chosen, the value not taken, and why."""

    topic: str
    chosen: str
    not_taken: str
    why: str


@dataclass(frozen=True, slots=True)
class SeverityPolicy:
    """The levels of policy/severity.yml, most severe first; when the follow-up of an incident is
    due (`after_the_incident`: timeline_within, report_within, ...); and its recorded decisions."""

    levels: tuple[Level, ...]
    source: Path
    after_the_incident: tuple[tuple[str, timedelta], ...] = ()
    decisions: tuple[Decision, ...] = ()
    measures: Mapping[str, Measure] = field(default_factory=dict, hash=False)
    conditions: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The level by the worst status when a check is not OK and no trigger is met: CRIT, WARN.
    otherwise: Mapping[str, str] = field(default_factory=dict, hash=False)

    def due(self, step: str) -> timedelta:
        """When the follow-up `step` (`report_within`, ...) is due after the resolution."""
        for name, value in self.after_the_incident:
            if name == step:
                return value
        known = ", ".join(name for name, _ in self.after_the_incident)
        raise ConfigError(f"{self.source} names no follow-up deadline {step!r} (it has {known})")

    def level(self, name: str) -> Level:
        """The level called `name` or one of its aliases (case-insensitive)."""
        wanted = name.strip().upper()
        for level in self.levels:
            if wanted == level.id or wanted in level.aliases:
                return level
        known = ", ".join(level.label for level in self.levels)
        raise ConfigError(f"unknown severity {name!r}; {self.source} defines {known}")


@dataclass(frozen=True, slots=True)
class Contact:
    key: str
    name: str
    kind: str
    reach: tuple[tuple[str, str], ...]

    @property
    def how(self) -> str:
        """How to reach the contact, in order: `pager platform-primary, chat #platform-oncall`."""
        return ", ".join(f"{means} {address}" for means, address in self.reach)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """From `after` into an incident on, page and notify these contacts."""

    after: timedelta
    page: tuple[Contact, ...]
    notify: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    ladders: Mapping[str, tuple[EscalationStep, ...]]
    contacts: Mapping[str, Contact]
    source: Path


def _version(path: Path) -> int:
    """The file's modification time: part of every cache key, so an edited policy is read again."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def load_severity(path: Path | None = None) -> SeverityPolicy:
    """Load and validate policy/severity.yml (or `path`)."""
    path = path or policy_dir() / "severity.yml"
    return _load_severity(path, _version(path))


@cache
def _load_severity(path: Path, _version: int) -> SeverityPolicy:
    data = load_document(path)
    measures = {
        name: Measure(name, spec["worse"], spec["unit"], spec["description"])
        for name, spec in data["measures"].items()
    }
    conditions = dict(data.get("conditions", {}))
    levels = tuple(
        _level(entry, f"{path}: levels[{index}]", measures, conditions)
        for index, entry in enumerate(data["levels"])
    )
    seen: dict[str, str] = {}
    for index, level in enumerate(levels):
        for name in (level.id, *level.aliases):
            if name in seen:
                raise ConfigError(
                    f"{path}: levels[{index}]: the name {name} is already used by {seen[name]}; "
                    "every level id and alias must be unique"
                )
            seen[name] = level.id
    otherwise = dict(data.get("otherwise", {}))
    for status, name in otherwise.items():
        if name not in seen:
            raise ConfigError(
                f"{path}: otherwise.{status}: {name!r} is no level; the levels are {', '.join(seen)}"
            )
        otherwise[status] = seen[name]
    after = tuple((key, parse_duration(value)) for key, value in data.get("after_the_incident", {}).items())
    decisions = tuple(Decision(**entry) for entry in data.get("decisions", ()))
    return SeverityPolicy(
        levels=levels,
        source=path,
        after_the_incident=after,
        decisions=decisions,
        measures=measures,
        conditions=conditions,
        otherwise=otherwise,
    )


def _triggers(
    entry: Mapping[str, Any], where: str, measures: Mapping[str, Measure], conditions: Mapping[str, str]
) -> Triggers:
    """A level's triggers, each naming a declared measure on its bad side or a declared condition."""
    by_key = {m.key: m for m in measures.values()}
    thresholds: dict[str, float] = {}
    for key, value in entry.items():
        if key == "conditions":
            continue
        measure = by_key.get(key)
        if measure is None:
            name = key.rsplit("_", 1)[0]
            if name in measures:
                hint = f"{name} is worse {measures[name].worse}: write {measures[name].key}"
            else:
                hint = f"declare {name} under measures, or use one of: {', '.join(by_key)}"
            raise ConfigError(f"{where}.triggers.{key}: no such trigger; {hint}")
        thresholds[measure.name] = float(value)
    named = entry.get("conditions", ())
    for condition in named:
        if condition not in conditions:
            raise ConfigError(
                f"{where}.triggers.conditions: {condition!r} is not declared under conditions "
                f"(declared: {', '.join(conditions) or 'none'})"
            )
    return Triggers(thresholds, frozenset(named))


_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def _quoting_triggers(text: str, where: str, triggers: Triggers, measures: Mapping[str, Measure]) -> str:
    """`text` with each `{<measure>_above}` or `{<measure>_below}` replaced by this level's
    threshold in its unit: prose that quotes a trigger instead of writing its number again."""

    def value(match: re.Match[str]) -> str:
        key = match[1]
        for measure in measures.values():
            if measure.key == key and measure.name in triggers.thresholds:
                return measure.format(triggers.thresholds[measure.name])
        known = ", ".join(f"{{{measures[name].key}}}" for name in triggers.thresholds)
        raise ConfigError(f"{where}: {{{key}}} is no trigger of this level; it has {known}")

    return _PLACEHOLDER.sub(value, text)


def _level(
    entry: Mapping[str, Any], where: str, measures: Mapping[str, Measure], conditions: Mapping[str, str]
) -> Level:
    triggers = _triggers(entry["triggers"], where, measures, conditions)
    return Level(
        id=entry["id"],
        aliases=tuple(entry.get("aliases", ())),
        name=entry["name"],
        definition=_quoting_triggers(entry["definition"], f"{where}.definition", triggers, measures),
        examples=tuple(
            _quoting_triggers(text, f"{where}.examples[{index}]", triggers, measures)
            for index, text in enumerate(entry["examples"])
        ),
        acknowledge_within=parse_duration(entry["acknowledge_within"]),
        resolve_within=parse_duration(entry["resolve_within"]),
        update_every=parse_duration(entry["update_every"]),
        paging=entry["paging"],
        page=entry["page"],
        triggers=triggers,
    )


def load_escalation(path: Path | None = None, *, severity: SeverityPolicy | None = None) -> EscalationPolicy:
    """Load policy/escalation.yml; every ladder must name a level of the severity policy."""
    path = path or policy_dir() / "escalation.yml"
    severity = severity or load_severity(path.with_name("severity.yml"))
    return _load_escalation(path, _version(path), severity)


@cache
def _load_escalation(path: Path, _version: int, severity: SeverityPolicy) -> EscalationPolicy:
    data = load_document(path)
    contacts = {
        key: Contact(key, c["name"], c["kind"], tuple(c["reach"].items()))
        for key, c in data["contacts"].items()
    }
    ladders: dict[str, tuple[EscalationStep, ...]] = {}
    for name, steps in data["ladders"].items():
        level = severity.level(name)
        built = []
        for index, step in enumerate(steps):
            for role in ("page", "notify"):
                for key in step.get(role, ()):
                    if key not in contacts:
                        raise ConfigError(
                            f"{path}: ladders.{name}[{index}].{role}: unknown contact {key!r}; "
                            f"add it under contacts or use one of {', '.join(contacts)}"
                        )
            built.append(
                EscalationStep(
                    after=parse_duration(step["after"]),
                    page=tuple(contacts[k] for k in step.get("page", ())),
                    notify=tuple(contacts[k] for k in step.get("notify", ())),
                )
            )
        ladders[level.id] = tuple(sorted(built, key=lambda s: s.after))
    return EscalationPolicy(ladders=ladders, contacts=contacts, source=path)


def load_environments(path: Path | None = None) -> dict[str, Any]:
    """Load and validate policy/environments.yml; returns its `environments` mapping."""
    path = path or policy_dir() / "environments.yml"
    environments: dict[str, Any] = load_document(path)["environments"]
    return environments
