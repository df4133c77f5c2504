"""Waiting for recovery: poll a check to a deadline, never sleep blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from checks._result import CheckResult


def wait_until_ok(
    check: Callable[..., CheckResult],
    *args: Any,
    timeout_s: float,
    interval_s: float = 1.0,
    **kwargs: Any,
) -> CheckResult:
    """Call `check(*args, **kwargs)` until it is OK or `timeout_s` has passed.

    Returns the last result, with `attempts` and `waited_s` added to its
    evidence. With `timeout_s=0` the check runs once; a check that does not apply here
    returns at once, since waiting will not make it apply.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    attempts = 0
    while True:
        attempts += 1
        result = check(*args, **kwargs)
        now = time.monotonic()
        if result.ok or not result.applies or now + interval_s > deadline:  # N/A will not change
            break
        time.sleep(interval_s)
    evidence = {**result.evidence, "attempts": attempts, "waited_s": round(now - started, 2)}
    return replace(result, evidence=evidence)
