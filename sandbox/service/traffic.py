"""The traffic generator: a steady, bounded mix of requests against the reference service.

Run it with `python -m sandbox.service.traffic`. Environment:

    API_URL              base URL of the reference service (required)
    TRAFFIC_RATE         requests per second (default 4)
    TRAFFIC_MAX_IN_FLIGHT  requests outstanding at once; beyond it a tick is skipped (default 8)
    TRAFFIC_HEARTBEAT    file touched every second while running (health checks read it)

The mix: 65 % analyses (skills weighted like the seeded history; 70 % of them about
one of 20 popular documents, which the cache serves, 30 % about a one-off document,
which goes to the upstream), 25 % users reading their own usage, 10 % the skill
catalogue. Each seeded user sends from its usual address (X-Forwarded-For). Every
request has a 10 s timeout; the generator never retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from sandbox.service.corpus import DOCUMENTS, SKILL_WEIGHTS, USERS, address, api_key

log = logging.getLogger("sandbox.traffic")

REQUEST_TIMEOUT_S = 10.0
REPORT_EVERY_S = 30.0
POPULAR_SHARE = 0.7  # analyses about a popular (cached) document: a hit ratio near 70 %


async def one_request(client: httpx.AsyncClient, rng: random.Random, tally: Counter[str]) -> None:
    user = rng.randint(1, USERS)
    headers = {"X-API-Key": api_key(user), "X-Forwarded-For": address(user)}
    pick = rng.random()
    try:
        if pick < 0.65:
            skill = rng.choices(list(SKILL_WEIGHTS), weights=list(SKILL_WEIGHTS.values()))[0]
            if rng.random() < POPULAR_SHARE:
                text = rng.choice(DOCUMENTS)
            else:
                text = f"Ticket {rng.randrange(10**9)}: {rng.choice(DOCUMENTS).split(': ', 1)[1]}"
            response = await client.post(
                "/api/analyze", json={"skill": skill, "input": text}, headers=headers
            )
        elif pick < 0.90:
            response = await client.get("/api/usage", params={"hours": 24}, headers=headers)
        else:
            response = await client.get("/api/skills", headers=headers)
        tally[str(response.status_code)] += 1
    except httpx.HTTPError as exc:
        tally[type(exc).__name__] += 1


async def run(api_url: str, *, rate: float, max_in_flight: int, heartbeat: Path | None) -> None:
    rng = random.Random()  # noqa: S311  # traffic shape, not security
    tally: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=api_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        await paced(
            lambda: one_request(client, rng, tally), tally, rate=rate, max_in_flight=max_in_flight,
            heartbeat=heartbeat,
        )  # fmt: skip


async def paced(
    request: Callable[[], Coroutine[Any, Any, None]],
    tally: Counter[str],
    *,
    rate: float,
    max_in_flight: int,
    heartbeat: Path | None,
) -> None:
    """Start `request()` `rate` times a second, never more than `max_in_flight` at once (a start
    that would exceed it is counted as skipped); touch `heartbeat` every second and log `tally`."""
    in_flight: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    next_tick = time.monotonic()
    last_beat = last_report = 0.0
    while True:
        now = time.monotonic()
        if len(in_flight) < max_in_flight:
            task = asyncio.create_task(request())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        else:
            tally["skipped"] += 1
        if heartbeat is not None and now - last_beat >= 1.0:
            heartbeat.touch()
            last_beat = now
        if now - last_report >= REPORT_EVERY_S:
            log.info("sent so far: %s", dict(sorted(tally.items())))
            last_report = now
        next_tick += interval
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))  # pacing, not readiness


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the log
    api_url = os.environ.get("API_URL")
    if not api_url:
        raise SystemExit("traffic: missing environment variable API_URL")
    heartbeat = os.environ.get("TRAFFIC_HEARTBEAT")
    rate = float(os.environ.get("TRAFFIC_RATE", "4"))
    max_in_flight = int(os.environ.get("TRAFFIC_MAX_IN_FLIGHT", "8"))
    log.info("sending %.1f requests/s to %s (at most %d in flight)", rate, api_url, max_in_flight)
    asyncio.run(
        run(api_url, rate=rate, max_in_flight=max_in_flight, heartbeat=Path(heartbeat) if heartbeat else None)
    )


if __name__ == "__main__":
    main()
