"""The reference service's admin API: the switches that mitigations flip."""

from __future__ import annotations

from typing import Any

import httpx

from checks._errors import ActionFailed, ProbeError
from checks.targets import Targets

DEFAULT_TIMEOUT_S = 10.0


def admin_call(
    targets: Targets, method: str, path: str, body: Any = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Any:
    """Call an admin route with the environment's admin token; the JSON answer.

    A transport failure is a `ProbeError` (nothing is known to have changed); an
    answer with an error status is an `ActionFailed` carrying what the service said.
    """
    url = targets.endpoint("api").rstrip("/") + path
    headers = {"Authorization": f"Bearer {targets.secret('admin_token')}"}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise ProbeError(f"the admin API gave no answer within {timeout_s:g} s", target=url) from exc
    except httpx.TransportError as exc:
        raise ProbeError(f"cannot reach the admin API: {type(exc).__name__}: {exc}", target=url) from exc
    if response.status_code in (401, 403):
        raise ActionFailed(
            f"{method} {path}: the admin token was refused (HTTP {response.status_code}); "
            "check the environment's admin_token secret"
        )
    if response.status_code >= 400:
        raise ActionFailed(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


def admin_state(targets: Targets) -> dict[str, Any]:
    """What the service's switches are set to now (GET /admin/state)."""
    state: dict[str, Any] = admin_call(targets, "GET", "/admin/state")
    return state
