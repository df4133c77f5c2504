"""Who may reach the control routes (admin, chaos) of the sandbox's processes: loopback, with a token."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

LOOPBACK = "127.0.0.0/8,::1/128"
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(spec: str) -> Networks:
    """Comma-separated networks, such as "127.0.0.0/8,::1/128"."""
    return tuple(ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip())


def control_networks(environ: Mapping[str, str]) -> Networks:
    """The networks in $CONTROL_ALLOW_FROM, loopback by default."""
    return networks(environ.get("CONTROL_ALLOW_FROM", LOOPBACK))


def allows(address: str, networks: Networks) -> bool:
    """Whether `address` (a peer's IP, possibly empty or malformed) is inside `networks`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def chaos_refusal(request: Request, *, token: str, networks: Networks) -> JSONResponse | None:
    """The answer refusing a chaos request from outside `networks` or without the token; None to let it in."""
    peer = request.client.host if request.client else ""
    if not allows(peer, networks):
        return JSONResponse({"error": "loopback only"}, status_code=403)
    given = request.headers.get("x-chaos-token")
    if not given:
        return JSONResponse({"error": "missing X-Chaos-Token"}, status_code=401)
    if not hmac.compare_digest(given, token):
        return JSONResponse({"error": "wrong chaos token"}, status_code=403)
    return None
