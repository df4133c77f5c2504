"""How `pytest -n N` shares the tests out among workers (pytest-xdist), each with a sandbox.

A unit of work goes to one worker whole:
- every runbook notebook together: the worker that has them runs them as one batch;
- each drill alone: drills are the long tests, so they are shared out one by one;
- every other test with the rest of its module: a module's tests share its fixtures
  (a sandbox of their own, a built site), which a worker would otherwise set up again.

Units go out in collection order, which puts the longest first (conftest.py), so that
the short ones fill the gaps at the end.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling


def scope_of(nodeid: str) -> str:
    """The unit of work the test `nodeid` belongs to."""
    module = nodeid.split("::", 1)[0]
    if module.startswith("notebooks/"):
        return "runbooks"
    if module.startswith("tests/drills/"):
        return nodeid
    return module


class SandboxScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduling with `scope_of` as the scope, in collection order."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        config.option.loadscopereorder = False  # the collection order is the schedule
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
