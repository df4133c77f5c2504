"""Audit-log verdicts for a suspected credential leak, and the evidence export.

Three observers: the audit log in PostgreSQL (one API key touching many users'
data; addresses a key has never used before), and the service's counter of
cross-user reads through Prometheus. `export_evidence` writes what the audit
log holds about a key into the incident record folder before anything is
revoked, so that containment does not destroy what the investigation needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

from checks._errors import ProbeError
from checks._policy import parse_duration
from checks._result import CheckResult, Status, unobserved
from checks.by_hand import Manual, by_hand, inline
from checks.postgres import aggregate
from checks.reference_service.usage_log import lacking_tables, tables_by_hand
from checks.targets import Targets

__all__ = [
    "check_cross_user_reads",
    "check_key_fanout",
    "check_new_addresses",
    "cross_user_reads_query",
    "export_evidence",
    "key_fanout",
]


def _window(targets: Targets, since: timedelta | None) -> timedelta:
    """Recent enough to clear soon after containment: two rate windows unless given."""
    return since or parse_duration(targets.query.rate_window) * 2


_UNREADABLE = "The database is unreachable: see the database-down runbook; the audit log waits there."


def _unreadable(name: str, exc: ProbeError) -> CheckResult:
    """A check that could not read the audit log observed nothing: UNKNOWN, so that no
    containment acts on it (a revocation needs a key the log named)."""
    return unobserved(
        name,
        f"cannot read the audit log: {exc}",
        configure=_UNREADABLE,
        evidence={"error": str(exc), "target": exc.target},
    )


_KEY_FANOUT: LiteralString = """
        WITH recent AS (
            SELECT api_key_id, count(*) AS requests, count(DISTINCT user_id) AS users,
                   array_agg(DISTINCT host(address)) AS addresses,
                   min(created_at) AS first_seen, max(created_at) AS last_seen
              FROM audit_logs
             WHERE created_at > now() - %(since)s AND api_key_id IS NOT NULL
             GROUP BY api_key_id HAVING count(DISTINCT user_id) >= %(min_users)s
        )
        SELECT r.api_key_id AS key_id, k.prefix AS key_prefix, k.name AS key_name,
               k.user_id AS owner_user_id, k.revoked_at IS NOT NULL AS revoked,
               r.requests, r.users, r.addresses, r.first_seen, r.last_seen,
               (SELECT count(*) FROM audit_logs AS a
                 WHERE a.api_key_id = r.api_key_id
                   AND a.created_at BETWEEN now() - interval '7 days' AND now() - %(since)s
               ) / (7 * 24.0) AS normal_per_hour
          FROM recent AS r JOIN api_keys AS k ON k.id = r.api_key_id
         ORDER BY r.users DESC, r.requests DESC
"""


def key_fanout(targets: Targets | str, *, since: timedelta, min_users: int) -> list[dict[str, Any]]:
    """API keys whose requests in `since` touched at least `min_users` users, with their owner,
    request count against the key's normal hourly rate (the seven days before), and addresses."""
    return aggregate(targets, _KEY_FANOUT, since=since, min_users=min_users)


def _key_fanout_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = _window(targets, args["since"])
    note = (
        f"API keys that touched {args['min_users']} or more users' data in the last "
        f"{since.total_seconds():g} s, with owner, addresses and the key's usual hourly rate: any row is CRIT"
    )
    return [Manual("sql", inline(_KEY_FANOUT, {"since": since, "min_users": args["min_users"]}), note)]


@by_hand(_key_fanout_by_hand)
def check_key_fanout(targets: Targets, *, since: timedelta | None = None, min_users: int = 5) -> CheckResult:
    """CRIT when one API key touched `min_users` or more users' data in the window.

    The evidence names the key (id, prefix, owner), its requests per hour now
    against its normal rate, and the addresses it came from: what the
    containment steps take.
    """
    if lacking := lacking_tables(targets, "key-fanout"):
        return lacking
    window = _window(targets, since)
    try:
        keys = key_fanout(targets, since=window, min_users=min_users)
    except ProbeError as exc:
        return _unreadable("key-fanout", exc)
    span = f"{window.total_seconds():g}s"
    if not keys:
        return CheckResult("key-fanout", Status.OK, f"no API key touched {min_users} or more users in {span}")
    top = keys[0]
    per_hour = top["requests"] / (window.total_seconds() / 3600)
    normal = float(top["normal_per_hour"] or 0)
    return CheckResult(
        "key-fanout",
        Status.CRIT,
        f"key {top['key_prefix']} ({top['key_name']}, user {top['owner_user_id']}) touched "
        f"{top['users']} users in {span} from {', '.join(top['addresses'])}: "
        f"{per_hour:.0f} requests/h against a normal {normal:.1f}/h",
        {
            "key_id": top["key_id"],
            "key_prefix": top["key_prefix"],
            "owner_user_id": top["owner_user_id"],
            "addresses": top["addresses"],
            "requests_per_hour": round(per_hour),
            "normal_per_hour": round(normal, 2),
            "keys": [
                {k: row[k] for k in ("key_id", "key_prefix", "owner_user_id", "users", "requests", "revoked")}
                for row in keys[:10]
            ],
        },
        remedy="Export the evidence, then revoke the key and its refresh tokens, and disable the user.",
        # One key across many users' data is not its owner at work: a leaked credential.
        conditions={"credential_leak"},
    )


_NEW_ADDRESSES: LiteralString = """
    SELECT a.api_key_id AS key_id, host(a.address) AS address, count(*) AS requests
      FROM audit_logs AS a
     WHERE a.created_at > now() - %(since)s AND a.api_key_id IS NOT NULL AND a.address IS NOT NULL
       AND NOT EXISTS (
           SELECT 1 FROM audit_logs AS b
            WHERE b.api_key_id = a.api_key_id AND b.address = a.address
              AND b.created_at BETWEEN now() - interval '7 days' AND now() - interval '1 hour')
     GROUP BY 1, 2 ORDER BY requests DESC LIMIT 20
"""


def _new_addresses_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = _window(targets, args["since"])
    note = (
        f"addresses a key used in the last {since.total_seconds():g} s that it never used in the seven "
        "days before the last hour: any row is WARN (ask the key's owner)"
    )
    return [Manual("sql", inline(_NEW_ADDRESSES, {"since": since}), note)]


@by_hand(_new_addresses_by_hand)
def check_new_addresses(targets: Targets, *, since: timedelta | None = None) -> CheckResult:
    """Addresses an API key used in the window that it never used in the seven days before
    the last hour. WARN: a new office or a new server is normal; a new address on a key
    that reads many users is not (read it with `check_key_fanout`)."""
    if lacking := lacking_tables(targets, "new-addresses"):
        return lacking
    window = _window(targets, since)
    try:
        rows = aggregate(targets, _NEW_ADDRESSES, since=window)
    except ProbeError as exc:
        return _unreadable("new-addresses", exc)
    if not rows:
        return CheckResult("new-addresses", Status.OK, "every key used only addresses it used before")
    listed = ", ".join(f"key {r['key_id']} from {r['address']} ({r['requests']})" for r in rows[:5])
    return CheckResult(
        "new-addresses",
        Status.WARN,
        f"keys used addresses new to them: {listed}",
        {"new": rows},
        remedy="Confirm with the key's owner whether the address is theirs.",
    )


def cross_user_reads_query(targets: Targets, service: str | None = None, *, window: str | None = None) -> str:
    """The PromQL of `check_cross_user_reads`: reads of another user's data per second, by key."""
    from checks import prometheus

    w = window or targets.query.rate_window
    key = targets.signals["cross_user_reads"].label("key")
    return f"sum by ({key}) (rate({prometheus.series(targets, 'cross_user_reads', service)}[{w}]))"


def _cross_user_reads_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        f"reads of another user's data per second, by API key, over the last "
        f"{args['window'] or targets.query.rate_window}: a key above {args['max_per_s']:g}/s is CRIT "
        "(no sample: no key did)"
    )
    return [Manual("promql", cross_user_reads_query(targets, args["service"], window=args["window"]), note)]


@by_hand(_cross_user_reads_by_hand)
def check_cross_user_reads(
    targets: Targets,
    service: str | None = None,
    *,
    max_per_s: float = 1.0,
    window: str | None = None,
    client: Any = None,
) -> CheckResult:
    """Reads of another user's data per key over the rate window (the service's counter):
    CRIT above `max_per_s` for any key."""
    from checks import prometheus

    name = "cross-user-reads"
    if lacking := prometheus._lacking(targets, name, "cross_user_reads"):
        return lacking
    w = window or targets.query.rate_window
    key = targets.signals["cross_user_reads"].label("key")
    promql = cross_user_reads_query(targets, service, window=window)
    try:
        samples = prometheus.query(targets, promql, client=client)
        # no series: no key read another user's data yet, or the service does not count it at all
        counted = bool(samples) or prometheus.exported(targets, "cross_user_reads", service, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(name, exc, remedy="Read the audit log directly (key-fanout).")
    if not counted:
        return prometheus._no_requests(targets, name, w, "cross_user_reads")
    rates = {s.labels.get(key, "?"): round(s.value, 2) for s in samples}
    loud = {k: v for k, v in rates.items() if v > max_per_s}
    if loud:
        return CheckResult(
            "cross-user-reads",
            Status.CRIT,
            "keys read other users' data: " + ", ".join(f"{k} at {v:g}/s" for k, v in loud.items()),
            {"per_key_per_s": rates, "max_per_s": max_per_s, "window": w},
            remedy="Contain the key: export evidence, revoke it, disable its user.",
            conditions={"data_exposure"},
        )
    return CheckResult(
        "cross-user-reads",
        Status.OK,
        f"no key reads other users' data above {max_per_s:g}/s over {w}",
        {"per_key_per_s": rates, "window": w},
    )


def export_evidence(
    targets: Targets,
    key_id: int | None,
    evidence_dir: str | Path,
    *,
    since: timedelta = timedelta(days=7),
    limit: int = 50_000,
) -> CheckResult:
    """Write the audit rows of API key `key_id` over `since`, and the key's record, into a JSON
    file under `evidence_dir` (the incident record folder). Read-only on every system; it
    runs before containment and in dry runs alike. OK with the file's path and a count;
    CRIT when nothing could be written; OK and nothing written when there is no suspect."""
    if lacking := lacking_tables(targets, "evidence-export"):
        return lacking
    if not key_id:
        return CheckResult("evidence-export", Status.OK, "no suspect key: nothing to export")
    try:
        key = aggregate(
            targets,
            "SELECT id, user_id, name, prefix, scopes, created_at, last_used_at, revoked_at"
            " FROM api_keys WHERE id = %(key_id)s",
            key_id=key_id,
        )
        rows = aggregate(
            targets,
            "SELECT id, created_at, user_id, api_key_id, method, path, status, host(address) AS address"
            " FROM audit_logs WHERE api_key_id = %(key_id)s AND created_at > now() - %(since)s"
            " ORDER BY created_at LIMIT %(limit)s",
            key_id=key_id,
            since=since,
            limit=limit,
        )
    except ProbeError as exc:
        return CheckResult(  # the export did not happen: a failed step, not an observation
            "evidence-export",
            Status.CRIT,
            f"cannot read the audit log: {exc}",
            {"error": str(exc), "target": exc.target},
            remedy=_UNREADABLE,
        )
    exported_at = datetime.now(UTC)
    folder = Path(evidence_dir)
    path = folder / f"evidence-key-{key_id}-{exported_at:%Y%m%dT%H%M%SZ}.json"
    document = {
        "exported_at": exported_at.isoformat(),
        "environment": targets.environment,
        "key": key[0] if key else None,
        "window": str(since),
        "audit_rows": rows,
        "truncated": len(rows) >= limit,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, default=str, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        return CheckResult(
            "evidence-export",
            Status.CRIT,
            f"could not write the evidence file: {exc}",
            {"error": str(exc), "path": str(path)},
            remedy="Choose a writable evidence_dir and run the export again before containing.",
        )
    return CheckResult(
        "evidence-export",
        Status.OK,
        f"{len(rows)} audit rows of key {key_id} written to {path}",
        {"path": str(path), "rows": len(rows), "key_id": key_id},
    )
