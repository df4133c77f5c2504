"""What the sandbox's clients know: derived API keys, their addresses, the documents they send.

The seed (sandbox/sql/schema.sql) stores only SHA-256 digests of keys derived the same way,
so the traffic generator and the fault catalogue can act as any seeded user.
"""

from __future__ import annotations

import hashlib

USERS = 40  # seeded customers, ids 1..40; id 41 is the support tool
SUPPORT_TOOL_USER_ID = 41
KEY_NAMESPACE = "drillbook-sandbox-key:"
ROLLOUT_SKILL = "summarise-v2"  # the candidate behind the rollout flag
ROLLOUT_STABLE = "summarise"  # what it replaces for the other requests
# Skills the traffic asks for, with weights matching the seeded history (the cost baseline).
SKILL_WEIGHTS: dict[str, int] = {
    "contract-review": 1,
    "summarise": 2,
    "classify-ticket": 2,
    "extract-entities": 1,
}
SUSPICIOUS_ADDRESS = "203.0.113.77"  # TEST-NET-3: never a customer's address
# The API's database pool grows to this many sessions under load; a leak that fills the
# server must leave it that room, or its growth takes the slot a responder needs.
API_POOL_MAX_SIZE = 5
API_APPLICATION_NAME = "drillbook-api"  # how its sessions show in pg_stat_activity

_TOPICS = (
    "renewal terms for a hosting contract",
    "a refund request after a double charge",
    "the quarterly roadmap review",
    "a data-processing addendum",
    "an outage report from a supplier",
    "a password reset that never arrived",
    "a purchase order for forty seats",
    "minutes of the security committee",
    "a complaint about slow exports",
    "an invoice dispute over travel costs",
    "a request to delete an account",
    "the onboarding checklist for new staff",
    "a partnership term sheet",
    "a bug report about date formats",
    "a change request for the billing cycle",
    "a non-disclosure agreement",
    "feedback on the mobile application",
    "a question about API limits",
    "a lease extension for the office",
    "a vendor security questionnaire",
)
DOCUMENTS: tuple[str, ...] = tuple(
    f"Document {n + 1}: {topic}. The sender asks for a decision by Friday and lists three "
    "points: scope, cost and the people who must approve it."
    for n, topic in enumerate(_TOPICS)
)


def api_key(user_id: int) -> str:
    """The sandbox API key of the seeded user `user_id` (1..41)."""
    return "dbk_" + hashlib.md5(f"{KEY_NAMESPACE}{user_id}".encode(), usedforsecurity=False).hexdigest()


def key_digest(key: str) -> str:
    """What the database stores for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def address(user_id: int) -> str:
    """The usual client address of user `user_id`, as in the seeded audit trail."""
    return f"10.20.{user_id % 7}.{10 + user_id}"
