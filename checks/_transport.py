"""One way to get an HTTP client: the caller's, or a short-lived one with a timeout."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import httpx


def session(client: httpx.Client | None, timeout_s: float) -> AbstractContextManager[httpx.Client]:
    """Borrow `client` (left open) or open a new one that closes after the block."""
    if client is not None:
        return nullcontext(client)
    return httpx.Client(timeout=timeout_s)
