"""The pager: an Alertmanager webhook receiver that records every page it gets.

Run it with `uvicorn sandbox.service.receiver:app`. Routes:

    POST /webhook   an Alertmanager webhook notification (version 4)
    GET  /pages     what arrived, oldest first: one entry per alert per notification, with
                    received_at, status, labels, annotations (runbook_url), startsAt
                    (?alertname=X&status=firing filter)
    GET  /health    200

It keeps the last `MAX_PAGES` entries in memory: a drill's evidence, not an archive.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("sandbox.receiver")

MAX_PAGES = 2000


def create_app() -> Starlette:
    pages: deque[dict[str, Any]] = deque(maxlen=MAX_PAGES)

    async def webhook(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            alerts = list(body["alerts"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not an Alertmanager notification"}, status_code=400)
        received = datetime.now(UTC).isoformat()
        for alert in alerts:
            page = {
                "received_at": received,
                "receiver": body.get("receiver"),
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "annotations": alert.get("annotations", {}),
                "startsAt": alert.get("startsAt"),
                "endsAt": alert.get("endsAt"),
            }
            pages.append(page)
            log.info(
                "page: %s %s %s",
                page["status"],
                page["labels"].get("alertname"),
                page["annotations"].get("runbook_url"),
            )
        return JSONResponse({"recorded": len(alerts)})

    async def list_pages(request: Request) -> JSONResponse:
        name = request.query_params.get("alertname")
        status = request.query_params.get("status")
        found = [
            page
            for page in pages
            if (name is None or page["labels"].get("alertname") == name)
            and (status is None or page["status"] == status)
        ]
        return JSONResponse({"pages": found})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "pages": len(pages)})

    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/pages", list_pages),
            Route("/health", health),
        ]
    )


app = create_app()
