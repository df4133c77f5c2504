"""What the linter reports: findings with a place, collected into a report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One defect: where it is (a path relative to the project root, a 1-based line) and what to do."""

    path: str
    line: int
    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.level}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding of one lint run, sorted by place."""

    root: Path
    findings: tuple[Finding, ...]
    runbooks: int = 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    @property
    def ok(self) -> bool:
        """True when nothing is an error (warnings do not fail a build)."""
        return not self.errors

    def summary(self) -> str:
        counts = [(len(self.errors), "error"), (len(self.warnings), "warning"), (self.runbooks, "runbook")]
        errors, warnings, runbooks = (f"{n} {word}{'s' * (n != 1)}" for n, word in counts)
        return f"drillbook lint: {errors}, {warnings} in {runbooks}"

    def lines(self) -> list[str]:
        """The findings as `path:line: level: message`, then the summary line."""
        return [*map(str, self.findings), self.summary()]


@dataclass(slots=True)
class Sink:
    """Where the checks put what they find; paths are shown relative to `root`."""

    root: Path
    today: date
    found: list[Finding] = field(default_factory=list)

    def where(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    def error(self, path: Path, line: int | None, message: str) -> None:
        self.found.append(Finding(self.where(path), line or 1, "error", message))

    def warning(self, path: Path, line: int | None, message: str) -> None:
        self.found.append(Finding(self.where(path), line or 1, "warning", message))

    def report(self, *, runbooks: int) -> Report:
        return Report(root=self.root, findings=tuple(sorted(set(self.found))), runbooks=runbooks)


def listing(names: Iterable[str], *, empty: str = "none") -> str:
    """`a, b, c` for a message; `empty` when there is nothing to list."""
    text = ", ".join(names)
    return text or empty
