"""The project's own configuration: `[tool.drillbook]` in the runbook repository's pyproject.toml.

One table says where the project's facts are, and every tool reads it: `drillbook lint`,
the site build, the pytest plugin. A project without the table is not a drillbook project,
and the pytest plugin leaves it alone.

    [tool.drillbook]
    alert_rules = ["monitoring/alerts.yml"]   # Prometheus rule files whose alerts need runbooks
    runbooks_pending = []                      # runbooks alerts point at, not written yet
    faults = "sandbox/faults.yml"              # the fault catalogue the runbooks' faults name
    drills = "tests/drills"                    # the drill tests, one naming each fault
    checks_packages = ["orders_checks"]        # the team's own checks, notebooks may import them
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks import ConfigError

__all__ = ["DEFAULT_ALERT_RULES", "Project", "read_table"]

PYPROJECT = "pyproject.toml"
DEFAULT_ALERT_RULES = ("sandbox/config/rules/alerts.yml",)
"""The rule files read when `[tool.drillbook] alert_rules` does not name any."""
DEFAULT_FAULTS = "sandbox/faults.yml"
DEFAULT_DRILLS = "tests/drills"


def read_table(root: Path) -> tuple[dict[str, Any] | None, str]:
    """`[tool.drillbook]` of `root`'s pyproject.toml (None when there is none) and the file's
    text; ConfigError naming the file when it is not TOML."""
    path = root / PYPROJECT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    try:
        table = tomllib.loads(text).get("tool", {}).get("drillbook")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return (table if isinstance(table, dict) else None), text


@dataclass(frozen=True, slots=True)
class Project:
    """Where a drillbook project keeps its facts."""

    root: Path
    configured: bool
    alert_rules: tuple[Path, ...]
    faults: Path
    drills: Path
    checks_packages: tuple[str, ...] = ()

    @classmethod
    def at(cls, root: Path) -> Project:
        """The project at `root`, from its `[tool.drillbook]` (defaults where it says nothing)."""
        table, _ = read_table(root)
        settings = table or {}
        rules = settings.get("alert_rules", list(DEFAULT_ALERT_RULES))
        if not isinstance(rules, list) or not all(isinstance(item, str) for item in rules):
            raise ConfigError(f"{root / PYPROJECT}: [tool.drillbook] alert_rules must be a list of paths")
        folders = {
            key: settings.get(key, default)
            for key, default in (("faults", DEFAULT_FAULTS), ("drills", DEFAULT_DRILLS))
        }
        for key, value in folders.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{root / PYPROJECT}: [tool.drillbook] {key} must be a path, such as {value!r}"
                )
        packages = settings.get("checks_packages", [])
        if not isinstance(packages, list) or not all(
            isinstance(name, str) and name.isidentifier() for name in packages
        ):
            raise ConfigError(
                f"{root / PYPROJECT}: [tool.drillbook] checks_packages must be a list of package names"
            )
        return cls(
            root=root,
            configured=table is not None,
            alert_rules=tuple(root / name for name in rules),
            faults=root / folders["faults"],
            drills=root / folders["drills"],
            checks_packages=tuple(packages),
        )

    def existing_alert_rules(self) -> tuple[Path, ...]:
        """The alert rule files; ConfigError naming the one that does not exist."""
        for path in self.alert_rules:
            if not path.is_file():
                raise ConfigError(
                    f"the alert rule file {path} does not exist ([tool.drillbook] alert_rules in "
                    f"{self.root / PYPROJECT}); list the rule files Prometheus loads, or [] for none"
                )
        return self.alert_rules
