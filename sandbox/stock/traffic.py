"""The stock stack's traffic: a light, steady mix of requests against the orders service.

Run it with `python -m sandbox.stock.traffic`. Environment:

    ORDERS_URL          base URL of the orders service (required)
    TRAFFIC_RATE        requests per second (default 4)
    TRAFFIC_HEARTBEAT   file touched every second while running (readiness reads it)

The mix: 50 % reads of one recent order (mostly cache hits), 30 % listings of the newest
orders, 20 % new orders. At most MAX_IN_FLIGHT requests are outstanding; beyond that a tick
is skipped. Every request has a REQUEST_TIMEOUT_S timeout and is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections import Counter
from pathlib import Path

import httpx

from sandbox.service.traffic import paced

log = logging.getLogger("sandbox.stock.traffic")

REQUEST_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 4
ITEMS = ("widget", "gadget", "sprocket", "flange", "gizmo")


async def one_request(
    client: httpx.AsyncClient, rng: random.Random, known: list[int], tally: Counter[str]
) -> None:
    pick = rng.random()
    try:
        if pick < 0.5 and known:
            response = await client.get(f"/orders/{rng.choice(known[-20:])}")
        elif pick < 0.8:
            response = await client.get("/orders")
        else:
            response = await client.post(
                "/orders", json={"item": rng.choice(ITEMS), "quantity": rng.randint(1, 5)}
            )
            if response.status_code == 201:
                known.append(int(response.json()["id"]))
                del known[:-100]
        tally[str(response.status_code)] += 1
    except httpx.HTTPError as exc:
        tally[type(exc).__name__] += 1


async def run(orders_url: str, *, rate: float, heartbeat: Path | None) -> None:
    rng = random.Random()  # noqa: S311  # traffic shape, not security
    tally: Counter[str] = Counter()
    known: list[int] = []
    async with httpx.AsyncClient(base_url=orders_url, timeout=REQUEST_TIMEOUT_S) as client:
        await paced(
            lambda: one_request(client, rng, known, tally), tally, rate=rate, max_in_flight=MAX_IN_FLIGHT,
            heartbeat=heartbeat,
        )  # fmt: skip


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    orders_url = os.environ.get("ORDERS_URL")
    if not orders_url:
        print("traffic: set ORDERS_URL to the orders service's base URL", file=sys.stderr)
        return 2
    rate = float(os.environ.get("TRAFFIC_RATE", "4"))
    heartbeat = os.environ.get("TRAFFIC_HEARTBEAT")
    asyncio.run(run(orders_url, rate=rate, heartbeat=Path(heartbeat) if heartbeat else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
