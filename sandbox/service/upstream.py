"""The upstream stub: an LLM-style completion provider with a public status page.

Run it with `uvicorn sandbox.service.upstream:app`. Environment:

    CHAOS_TOKEN   token of the /chaos route, X-Chaos-Token header (required)
    CONTROL_ALLOW_FROM  networks allowed to reach /chaos (default loopback)

Routes:
    POST /v1/complete            {"model", "input", "max_tokens"} -> {"output", "usage": {...}}
    GET  /api/v2/status.json     the provider's status in the common status-page format
    GET  /health                 200 while the provider serves, 503 during an outage
    GET  /metrics                requests by status code
    GET|PUT /chaos               {"mode": "ok"|"outage"|"rate_limited", "token_multiplier": float}

Token usage is deterministic per input (a hash), in the range of the seeded history:
600-1000 input tokens and 200-350 output tokens, output capped by `max_tokens`. A
request whose `max_tokens` exceeds the model's context limit is rejected with 400,
as real providers do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.service.control import chaos_refusal, control_networks

log = logging.getLogger("sandbox.upstream")

MODEL_LIMITS = {"atlas-1": 8192, "atlas-2": 16384}  # max_tokens each model accepts
RETRY_AFTER_S = 2
Mode = Literal["ok", "outage", "rate_limited"]


@dataclass
class Chaos:
    mode: Mode = "ok"
    token_multiplier: float = 1.0
    since: str = ""

    def public(self) -> dict[str, Any]:
        return {"mode": self.mode, "token_multiplier": self.token_multiplier}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def usage_for(text: str, max_tokens: int, multiplier: float) -> tuple[int, int]:
    """Input and output tokens billed for `text`: deterministic, like a real tokenizer."""
    digest = _digest(text)
    tokens_in = 600 + digest % 401
    tokens_out = round((200 + (digest >> 12) % 151) * multiplier)
    return tokens_in, min(tokens_out, max_tokens)


def create_app() -> Starlette:
    chaos = Chaos(since=datetime.now(UTC).isoformat())
    token = os.environ.get("CHAOS_TOKEN", "")
    if not token:
        raise RuntimeError("missing environment variable CHAOS_TOKEN")
    allowed = control_networks(os.environ)
    registry = CollectorRegistry()
    served = Counter(
        "upstream_stub_requests", "Completion requests by status code.", ["status"], registry=registry
    )
    tokens = Counter("upstream_stub_tokens", "Tokens billed by kind.", ["kind"], registry=registry)

    def answer(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
        served.labels(str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers or None)

    async def complete(request: Request) -> JSONResponse:
        if chaos.mode == "outage":
            return answer(503, {"error": {"type": "overloaded", "message": "service unavailable"}})
        if chaos.mode == "rate_limited":
            return answer(
                429,
                {"error": {"type": "rate_limit_error", "message": "too many requests for this account"}},
                **{"retry-after": str(RETRY_AFTER_S)},
            )
        try:
            body = await request.json()
            model, text, max_tokens = str(body["model"]), str(body["input"]), int(body["max_tokens"])
        except (ValueError, KeyError, TypeError):
            return answer(400, {"error": {"type": "invalid_request_error", "message": "malformed request"}})
        limit = MODEL_LIMITS.get(model)
        if limit is None:
            return answer(
                400, {"error": {"type": "invalid_request_error", "message": f"unknown model {model}"}}
            )
        if max_tokens > limit:
            return answer(
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"max_tokens {max_tokens} exceeds the limit of {model} ({limit})",
                    }
                },
            )
        tokens_in, tokens_out = usage_for(text, max_tokens, chaos.token_multiplier)
        tokens.labels("input").inc(tokens_in)
        tokens.labels("output").inc(tokens_out)
        return answer(
            200,
            {
                "id": f"cmpl-{_digest(text + str(time.time_ns())):08x}",
                "model": model,
                "output": f"[{model}] {text[:80]}",
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
            },
        )

    async def status_page(request: Request) -> JSONResponse:
        indicator, description = {
            "ok": ("none", "All Systems Operational"),
            "outage": ("major", "Major Service Outage"),
            "rate_limited": ("minor", "Elevated rate limiting on the completion API"),
        }[chaos.mode]
        return JSONResponse(
            {
                "page": {
                    "id": "atlas-llm",
                    "name": "Atlas LLM API",
                    "url": str(request.base_url).rstrip("/"),
                    "time_zone": "Etc/UTC",
                    "updated_at": chaos.since,
                },
                "status": {"indicator": indicator, "description": description},
            }
        )

    async def health(request: Request) -> JSONResponse:
        ok = chaos.mode != "outage"
        return JSONResponse(
            {"status": "ok" if ok else "down", **chaos.public()}, status_code=200 if ok else 503
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def chaos_route(request: Request) -> JSONResponse:
        if (refusal := chaos_refusal(request, token=token, networks=allowed)) is not None:
            return refusal
        if request.method == "GET":
            return JSONResponse(chaos.public())
        before = chaos.public()
        body = await request.json()
        mode = body.get("mode", chaos.mode)
        multiplier = float(body.get("token_multiplier", chaos.token_multiplier))
        if mode not in ("ok", "outage", "rate_limited") or not 0 < multiplier <= 100:
            return JSONResponse({"error": "mode: ok|outage|rate_limited; 0 < token_multiplier <= 100"}, 422)
        if mode != chaos.mode:
            chaos.since = datetime.now(UTC).isoformat()
        chaos.mode, chaos.token_multiplier = mode, multiplier
        log.warning("chaos: %s -> %s", before, chaos.public())
        return JSONResponse({"before": before, "after": chaos.public()})

    return Starlette(
        routes=[
            Route("/v1/complete", complete, methods=["POST"]),
            Route("/api/v2/status.json", status_page),
            Route("/health", health),
            Route("/metrics", metrics),
            Route("/chaos", chaos_route, methods=["GET", "PUT"]),
        ]
    )


app = create_app()
