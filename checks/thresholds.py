"""Which parameters of a check are thresholds of the severity policy's measures.

    @thresholds(warn="error_ratio", crit="error_ratio")
    def check_error_ratio(targets, *, warn=0.05, crit=0.10): ...

The defaults stay plain numbers, readable where the check is written; `drillbook lint`
fails when one of them is not a threshold that policy/severity.yml holds for its measure,
so that a check never judges by a number the policy does not know. A team's own checks
declare theirs the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["registered", "thresholds"]

F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, tuple[Callable[..., Any], Mapping[str, str]]] = {}


def thresholds(**parameters: str) -> Callable[[F], F]:
    """Declare `parameter=measure` for each threshold parameter of the decorated check."""

    def declare(check: F) -> F:
        import inspect

        known = inspect.signature(check).parameters
        for parameter in parameters:
            if parameter not in known:
                raise TypeError(f"{check.__qualname__} has no parameter {parameter!r} to declare")
        _REGISTRY[f"{check.__module__}.{check.__qualname__}"] = (check, dict(parameters))
        return check

    return declare


def registered() -> Iterator[tuple[Callable[..., Any], Mapping[str, str]]]:
    """Every declared check (of the modules imported so far) with its threshold parameters."""
    yield from _REGISTRY.values()
