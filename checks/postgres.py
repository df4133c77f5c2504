"""PostgreSQL: connections, long-running and blocked queries, and the service's own tables.

Query functions are nouns that return typed rows; `check_*` functions turn them
into `CheckResult`s and never raise for a database that is down: they report
it. Every query has a statement timeout and uses bound parameters; none of them
writes anything. The caller's own session is never counted or listed.

A database whose connection slots are all taken is not down: it refuses new
sessions with SQLSTATE 53300 ("sorry, too many clients already", "remaining
connection slots are reserved ..."). That refusal is an observation (the database
is full), never "unreachable". When an environment declares a reserved connection
(`postgres_reserved` in policy/environments.yml: a role that may use the slots
PostgreSQL keeps back, `superuser_reserved_connections`, or on PostgreSQL 16+
`reserved_connections` through `pg_use_reserved_connections`), every session this
module opens falls back to it when the ordinary one is refused for lack of slots,
so that diagnosis still sees who holds the slots and a mitigation can still
terminate them. Such a session names itself `drillbook-reserved` in
pg_stat_activity, and is never counted or listed either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from checks._errors import ConfigError, ProbeError
from checks._policy import load_environments
from checks._result import CheckResult, Status, ladder, unobserved
from checks.by_hand import Manual, by_hand, inline, percent
from checks.redact import redacted
from checks.targets import Targets
from checks.thresholds import thresholds

__all__ = [
    "Backend",
    "ConnectionStats",
    "DatabaseFull",
    "Holder",
    "aggregate",
    "blocked_queries",
    "check_blocked_queries",
    "check_connections",
    "check_exporter",
    "check_idle_in_transaction",
    "check_long_running_queries",
    "check_reachable",
    "check_server",
    "check_service_pool",
    "connect",
    "connections",
    "connections_verdict",
    "exporter_query",
    "idle_in_transaction",
    "idle_in_transaction_sql",
    "idle_verdict",
    "location",
    "long_running_queries",
    "long_running_sql",
    "long_running_verdict",
    "reserved_dsn",
    "service_pool_queries",
    "sessions",
    "through_reserved",
]

DEFAULT_TIMEOUT_S = 5.0
Row = dict[str, Any]


APPLICATION = "drillbook"
RESERVED_APPLICATION = "drillbook-reserved"

# The server's refusal of a new session for lack of slots (SQLSTATE 53300). libpq hands a
# refused start-up to its client as text only, without the SQLSTATE, so these are the
# server's messages for that code (PostgreSQL 12 to 17, English messages): the last slot
# taken, or only reserved slots left for a role that may not use them.
_NO_SLOT = re.compile(r"too many clients already|remaining connection slots are reserved")


class DatabaseFull(ProbeError):
    """PostgreSQL refused a session because every slot this role may use is taken.

    An observation (the database is full), not an outage. Raised only when no
    reserved connection got in either: `reserved` says why (not declared, or
    refused too).
    """

    def __init__(self, message: str, *, target: str, reserved: str) -> None:
        super().__init__(message, target=target)
        self.reserved = reserved


def reserved_dsn(targets: Targets) -> str | None:
    """The environment's reserved connection, or None when it declares none.

    `postgres_reserved` in environments.yml is a DSN for a role that may use the
    reserved slots; any parameter it leaves out (host, port, database, TLS) is the
    ordinary `postgres` endpoint's, so `postgresql://responder@` is enough when only
    the role differs. Its password is the secret `postgres_reserved_password`, never
    the ordinary one.
    """
    declared = load_environments().get(targets.environment, {}).get("postgres_reserved")
    if not declared:
        return None
    try:
        base = psycopg.conninfo.conninfo_to_dict(targets.endpoint("postgres"))
        override = psycopg.conninfo.conninfo_to_dict(declared)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"environment {targets.environment!r}: postgres_reserved is not a PostgreSQL DSN: "
            f"{_first_line(exc)}"
        ) from None
    base.pop("password", None)  # the ordinary role's password is not the reserved role's
    return psycopg.conninfo.make_conninfo("", **{**base, **override})


def connect(
    target: Targets | str, *, timeout_s: float | None = None, read_only: bool = True
) -> psycopg.Connection[Row]:
    """An autocommit session with connect and statement timeouts, read-only unless asked.

    The password, when the environment declares one, comes from its secret
    variable (`postgres_password`), never from the DSN in a file. When PostgreSQL
    refuses the session for lack of slots and the environment declares a reserved
    connection, the session is opened through that instead (`through_reserved`
    tells); when it cannot be, `DatabaseFull` says why.
    """
    if isinstance(target, Targets):
        dsn = target.endpoint("postgres")
        password = target.optional_secret("postgres_password")
        timeout = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        dsn, password, timeout = target, None, timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
    try:
        return _open(dsn, password, timeout=timeout, read_only=read_only, application=APPLICATION)
    except psycopg.Error as exc:
        if not _NO_SLOT.search(str(exc)):
            raise ProbeError(
                f"cannot connect to PostgreSQL: {_first_line(exc)}", target=location(dsn)
            ) from exc
        refusal = _server_message(exc)
    reserved = reserved_dsn(target) if isinstance(target, Targets) else None
    if reserved is None or not isinstance(target, Targets):
        why = "no reserved connection is declared (postgres_reserved in environments.yml)"
        raise DatabaseFull(f"PostgreSQL is full: {refusal}; {why}", target=location(dsn), reserved=why)
    try:
        return _open(
            reserved,
            target.optional_secret("postgres_reserved_password"),
            timeout=timeout,
            read_only=read_only,
            application=RESERVED_APPLICATION,
        )
    except psycopg.Error as exc:
        why = f"the reserved connection was refused too: {_server_message(exc)}"
        raise DatabaseFull(
            f"PostgreSQL is full: {refusal}; {why}", target=location(dsn), reserved=why
        ) from exc


def through_reserved(conn: psycopg.Connection[Any]) -> bool:
    """Whether `conn` was opened through the environment's reserved connection."""
    return conn.info.parameter_status("application_name") == RESERVED_APPLICATION


def _open(
    dsn: str, password: str | None, *, timeout: float, read_only: bool, application: str
) -> psycopg.Connection[Row]:
    extra: dict[str, Any] = {"password": password} if password else {}
    return psycopg.connect(
        dsn,
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=max(1, round(timeout)),
        application_name=application,
        options=f"-c statement_timeout={int(timeout * 1000)}"
        + (" -c default_transaction_read_only=on" if read_only else ""),
        **extra,
    )


def _server_message(exc: BaseException) -> str:
    """The server's own words in a refused start-up (after "FATAL:"), else the first line."""
    text = _first_line(exc)
    return text.split("FATAL:", 1)[1].strip() if "FATAL:" in text else text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def location(target: Targets | str) -> str:
    """Where the database is (host:port/dbname), without credentials, for plans and evidence."""
    dsn = target.endpoint("postgres") if isinstance(target, Targets) else target
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _rows(target: Targets | str, sql: LiteralString, params: Mapping[str, Any] | None = None) -> list[Row]:
    with connect(target) as conn:
        try:
            return conn.execute(sql, params or {}).fetchall()
        except psycopg.Error as exc:
            raise ProbeError(f"query failed: {_first_line(exc)}", target=location(conn.info.dsn)) from exc


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True, slots=True)
class Holder:
    """Client sessions that share an application, a role and a state, and how many there are."""

    application: str
    user: str | None
    state: str
    count: int

    def describe(self) -> str:
        return f"{self.count} {self.state} from {self.application or '(no application name)'} ({self.user})"


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """Client connections by state against what the server allows.

    `reserved` is every slot ordinary roles may not use: `superuser_reserved_connections`
    plus, on PostgreSQL 16+, `reserved_connections`. `through_reserved` says the
    numbers were read through the reserved connection, because the ordinary one was
    refused for lack of slots.
    """

    max_connections: int
    reserved: int
    by_state: Mapping[str, int]
    holders: tuple[Holder, ...] = ()
    through_reserved: bool = False

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def available(self) -> int:
        """Connections ordinary roles may open: max_connections less the reserved slots."""
        return self.max_connections - self.reserved

    @property
    def usage(self) -> float:
        return self.total / self.available if self.available > 0 else 1.0

    @property
    def full(self) -> bool:
        """Every slot an ordinary role may use is taken (or the server said so)."""
        return self.through_reserved or self.total >= self.available


_HOLDERS: LiteralString = """
    SELECT coalesce(application_name, '') AS application, usename AS user,
           coalesce(state, 'unknown') AS state, count(*) AS n
      FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
     GROUP BY 1, 2, 3 ORDER BY n DESC, 1, 2, 3
"""
_LIMITS: LiteralString = """
    SELECT current_setting('max_connections')::int AS max_connections,
           current_setting('superuser_reserved_connections')::int
           + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved
"""


def connections(target: Targets | str) -> ConnectionStats:
    """Client backends by state (active, idle, idle in transaction, ...) and the server's limit.

    `holders` groups them by application, role and state, the largest group first.
    """
    with connect(target) as conn:
        try:
            rows = conn.execute(_HOLDERS).fetchall()
            limits = conn.execute(_LIMITS).fetchone()
        except psycopg.Error as exc:
            raise ProbeError(f"query failed: {_first_line(exc)}", target=location(conn.info.dsn)) from exc
        via_reserved = through_reserved(conn)
    assert limits is not None  # a SELECT without FROM returns one row
    by_state: dict[str, int] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + int(row["n"])
    return ConnectionStats(
        max_connections=limits["max_connections"],
        reserved=limits["reserved"],
        by_state=by_state,
        holders=tuple(Holder(r["application"], r["user"], r["state"], int(r["n"])) for r in rows),
        through_reserved=via_reserved,
    )


def _reserved_note(targets: Targets) -> str:
    """Where psql gets in when the ordinary role is refused for lack of slots, if declared."""
    try:
        reserved = reserved_dsn(targets)
    except ConfigError:  # no postgres endpoint known here, or not a DSN
        return ""
    if reserved is None:
        return ""
    variable = targets.secret_variables.get("postgres_reserved_password")
    password = f" (its password in ${variable})" if variable else ""
    return f"; if psql is refused for lack of slots, connect as the reserved role: '{reserved}'{password}"


def _connections_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    return [
        Manual(
            "sql",
            inline(_HOLDERS),
            "client sessions by application, role and state (psql's own left out), the largest group "
            "first: many 'idle in transaction' point at a leak, many 'active' at slow queries",
        ),
        Manual(
            "sql",
            inline(_LIMITS),
            f"the sessions above against max_connections less the reserved slots: WARN from "
            f"{percent(args['warn_ratio'])}, CRIT from {percent(args['crit_ratio'])}, every slot taken: "
            f"full" + _reserved_note(targets),
        ),
    ]


@by_hand(_connections_by_hand)
@thresholds(warn_ratio="saturation", crit_ratio="saturation")
def check_connections(
    target: Targets | str, *, warn_ratio: float = 0.7, crit_ratio: float = 0.8
) -> CheckResult:
    """Connections in use against the limit: WARN from `warn_ratio`, CRIT from `crit_ratio`.

    CRIT "full" when every ordinary slot is taken, naming who holds them; read
    through the reserved connection when the ordinary one is refused.
    """
    try:
        stats = connections(target)
    except DatabaseFull as exc:
        return _full_unseen("postgres-connections", exc)
    except ProbeError as exc:
        return _unreachable("postgres-connections", exc)
    return connections_verdict(stats, warn_ratio=warn_ratio, crit_ratio=crit_ratio)


def connections_verdict(stats: ConnectionStats, *, warn_ratio: float, crit_ratio: float) -> CheckResult:
    """The verdict of `check_connections` on what the server reported."""
    evidence: dict[str, Any] = {
        "in_use": stats.total,
        "available": stats.available,
        "max_connections": stats.max_connections,
        "by_state": dict(stats.by_state),
    }
    idle_tx = stats.by_state.get("idle in transaction", 0)
    if stats.full:
        evidence["holders"] = [h.describe() for h in stats.holders[:10]]
        evidence["through_reserved"] = stats.through_reserved
        summary = f"full: {stats.total} of {stats.available} connection slots taken"
        if stats.holders:
            summary += f", most by {stats.holders[0].describe()}"
        summary += (
            "; new sessions are refused (seen through the reserved connection)"
            if stats.through_reserved
            else "; the next session will be refused"
        )
        return CheckResult(
            "postgres-connections",
            Status.CRIT,
            summary,
            evidence,
            remedy="Terminate the sessions that hold the slots (idle in transaction first); the "
            "mitigations get in through the reserved connection. Then fix the leak or the pool size.",
            measurements={"saturation": 1.0},
        )
    summary = f"{stats.total} of {stats.available} connections in use ({stats.usage:.0%})"
    if idle_tx:
        summary += f", {idle_tx} idle in transaction"
    status = ladder(stats.usage, warn=warn_ratio, crit=crit_ratio)
    return CheckResult(
        "postgres-connections",
        status,
        summary,
        evidence,
        remedy="Find who holds them (idle in transaction first), terminate the stuck ones, "
        "then fix the pool size or the leak.",
        measurements={"saturation": stats.usage},
    )


_REACHABLE: LiteralString = "SELECT version() AS version, pg_is_in_recovery() AS replica"
_ANSWERS: LiteralString = "SELECT 1"


def _reachable_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        "a row with the version and whether it is a replica; 'too many clients' or 'remaining "
        "connection slots are reserved' means full, not down (the database-connections runbook)"
    )
    return [Manual("sql", _REACHABLE, note)]


@by_hand(_reachable_by_hand)
def check_reachable(target: Targets | str) -> CheckResult:
    """Can a session be opened and a query answered? CRIT with the error when not.

    A database that refuses ordinary sessions for lack of slots is CRIT "full", not
    unreachable, even when the reserved connection still answers.
    """
    try:
        with connect(target) as conn:
            row = conn.execute(_REACHABLE).fetchone()
            via_reserved = through_reserved(conn)
    except DatabaseFull as exc:
        return _full_unseen("postgres", exc)
    except ProbeError as exc:
        return _unreachable("postgres", exc)
    except psycopg.Error as exc:
        return _unreachable(
            "postgres", ProbeError(f"query failed: {_first_line(exc)}", target=location(target))
        )
    assert row is not None
    role = "replica" if row["replica"] else "primary"
    version = str(row["version"]).split(",")[0]
    if via_reserved:
        return CheckResult(
            "postgres",
            Status.CRIT,
            f"full: ordinary sessions are refused for lack of slots; the reserved connection answers "
            f"({version}, {role})",
            {"role": role, "through_reserved": True},
            remedy="Every ordinary slot is taken: see the database-connections runbook.",
            measurements={"saturation": 1.0},
        )
    return CheckResult("postgres", Status.OK, f"reachable ({version}, {role})", {"role": role})


def _server_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        "up when the server answers at all, even to refuse the session for lack of slots (full, not "
        "down); down when the connection is refused or times out"
    )
    return [Manual("sql", _ANSWERS, note)]


@by_hand(_server_by_hand)
def check_server(target: Targets | str) -> CheckResult:
    """Is the PostgreSQL server up? It is when it answers at all, even to refuse a session for
    lack of slots: a full database is not a down one, and restarting it would drop every session
    for nothing. CRIT when nothing answers (refused, timed out, or the query failed).

    The evidence a restart acts on; `check_reachable` is what a responder reads.
    """
    try:
        with connect(target) as conn:
            conn.execute(_ANSWERS)
            full = through_reserved(conn)
    except DatabaseFull:
        return CheckResult(
            "postgres-server",
            Status.OK,
            "up: it answers, and refuses sessions for lack of slots (full, not down)",
            {"full": True},
        )
    except ProbeError as exc:
        return _unreachable("postgres-server", exc)
    except psycopg.Error as exc:
        return _unreachable(
            "postgres-server", ProbeError(f"query failed: {_first_line(exc)}", target=location(target))
        )
    if full:
        return CheckResult(
            "postgres-server",
            Status.OK,
            "up: it answers through the reserved connection, and refuses ordinary sessions (full, not down)",
            {"full": True},
        )
    return CheckResult("postgres-server", Status.OK, "up: it answers queries", {"full": False})


def _unreachable(name: str, exc: ProbeError) -> CheckResult:
    if isinstance(exc, DatabaseFull):
        return _cannot_look(name, exc)
    return CheckResult(
        name,
        Status.CRIT,
        f"PostgreSQL is unreachable: {exc}",
        {"error": str(exc), "target": exc.target},
        remedy="Check the database process and its host; see the database-down runbook.",
        # The database is the system of record: nothing answers in its place.
        conditions={"dependency_down_without_fallback"},
    )


def _full_unseen(name: str, exc: DatabaseFull) -> CheckResult:
    """The server refused us for lack of slots and no reserved connection got in: full, unseen."""
    return CheckResult(
        name,
        Status.CRIT,
        f"full: PostgreSQL refuses new sessions, every slot this role may use is taken; {exc.reserved}",
        {"error": str(exc), "target": exc.target},
        remedy="Connect as a role that may use the reserved slots (declare postgres_reserved for "
        "this environment) to see and terminate who holds them, or restart the leaking client.",
        measurements={"saturation": 1.0},
    )


def _cannot_look(name: str, exc: DatabaseFull) -> CheckResult:
    """What a check that needs a session says when the database is full and no reserved path
    got in: it observed nothing of its own, so UNKNOWN, and no mitigation acts on it."""
    return CheckResult(
        name,
        Status.UNKNOWN,
        f"cannot look: PostgreSQL is full and refuses this session; {exc.reserved}",
        {"error": str(exc), "target": exc.target},
        remedy="See postgres-connections; declare postgres_reserved for this environment so that "
        "diagnosis and mitigation still get in when the slots are gone.",
    )


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class Backend:
    """One server process of pg_stat_activity."""

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    query: str
    query_seconds: float | None
    transaction_seconds: float | None
    wait_event: str | None
    blocked_by: tuple[int, ...] = ()

    def describe(self) -> str:
        age = f"{self.transaction_seconds:.0f}s" if self.transaction_seconds is not None else "?"
        return (
            f"pid {self.pid} ({self.user}, {self.state}, transaction {age}): {redacted(self.query, limit=80)}"
        )


_BACKENDS: LiteralString = """
    SELECT pid, usename AS user, application_name AS application,
           host(client_addr) AS client, state, left(query, 500) AS query,
           extract(epoch FROM now() - query_start)::float AS query_seconds,
           extract(epoch FROM now() - xact_start)::float AS transaction_seconds,
           wait_event_type || ':' || wait_event AS wait_event,
           pg_blocking_pids(pid) AS blocked_by
      FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


def _backends(rows: Sequence[Row]) -> list[Backend]:
    return [Backend(**{**row, "blocked_by": tuple(row["blocked_by"] or ())}) for row in rows]


def sessions(target: Targets | str) -> list[Backend]:
    """Every client session but the caller's own."""
    return _backends(_rows(target, _BACKENDS + " ORDER BY backend_start"))


def long_running_sql(min_seconds: float) -> tuple[LiteralString, dict[str, Any]]:
    """The statement of `long_running_queries`, and its parameters."""
    sql = _BACKENDS + "       AND state = 'active' AND now() - query_start >= make_interval(secs => %(s)s)\n"
    return sql + "     ORDER BY query_start", {"s": min_seconds}


def long_running_queries(target: Targets | str, *, min_seconds: float = 30.0) -> list[Backend]:
    """Active queries running for at least `min_seconds`, longest first."""
    return _backends(_rows(target, *long_running_sql(min_seconds)))


def idle_in_transaction_sql(older_than_s: float) -> tuple[LiteralString, dict[str, Any]]:
    """The statement of `idle_in_transaction`, and its parameters."""
    sql = _BACKENDS + (
        "       AND state IN ('idle in transaction', 'idle in transaction (aborted)')\n"
        "       AND now() - state_change >= make_interval(secs => %(s)s)\n"
    )
    return sql + "     ORDER BY xact_start", {"s": older_than_s}


def idle_in_transaction(target: Targets | str, *, older_than_s: float = 60.0) -> list[Backend]:
    """Sessions idle inside an open transaction for at least `older_than_s`, oldest first."""
    return _backends(_rows(target, *idle_in_transaction_sql(older_than_s)))


_BLOCKED: LiteralString = (
    _BACKENDS + "       AND cardinality(pg_blocking_pids(pid)) > 0\n     ORDER BY query_start"
)


def blocked_queries(target: Targets | str) -> list[Backend]:
    """Sessions waiting on a lock, each with the pids that block it."""
    return _backends(_rows(target, _BLOCKED))


def _long_running_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        f"active queries running for {args['warn_s']:g} s or more, the longest first (query_seconds): "
        f"WARN, CRIT from {args['crit_s']:g} s"
    )
    return [Manual("sql", inline(*long_running_sql(args["warn_s"])), note)]


def _blocked_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        "sessions waiting on a lock, and in blocked_by the pids that hold it: any row is CRIT; the "
        "head of a chain is a pid that blocks others and waits on nobody"
    )
    return [Manual("sql", inline(_BLOCKED), note)]


@by_hand(_long_running_by_hand)
def check_long_running_queries(
    target: Targets | str, *, warn_s: float = 30.0, crit_s: float = 300.0
) -> CheckResult:
    """Queries running longer than `warn_s` (WARN) or `crit_s` (CRIT)."""
    try:
        slow = long_running_queries(target, min_seconds=warn_s)
    except ProbeError as exc:
        return _unreachable("long-running-queries", exc)
    return long_running_verdict(slow, warn_s=warn_s, crit_s=crit_s)


def long_running_verdict(slow: Sequence[Backend], *, warn_s: float, crit_s: float) -> CheckResult:
    """The verdict of `check_long_running_queries` on the queries running from `warn_s`."""
    if not slow:
        return CheckResult("long-running-queries", Status.OK, f"no query has run longer than {warn_s:g} s")
    longest = max(b.query_seconds or 0 for b in slow)
    status = Status.CRIT if longest >= crit_s else Status.WARN
    return CheckResult(
        "long-running-queries",
        status,
        f"{len(slow)} queries running longer than {warn_s:g} s, the longest for {longest:.0f} s",
        {"queries": [b.describe() for b in slow[:10]]},
        remedy="Check the plan of the slowest query; cancel it if it blocks others.",
    )


@by_hand(_blocked_by_hand)
def check_blocked_queries(target: Targets | str) -> CheckResult:
    """Sessions waiting on locks: CRIT with the blockers when any are waiting."""
    try:
        blocked = blocked_queries(target)
    except ProbeError as exc:
        return _unreachable("blocked-queries", exc)
    if not blocked:
        return CheckResult("blocked-queries", Status.OK, "no session is waiting on a lock")
    blockers = sorted({pid for b in blocked for pid in b.blocked_by})
    return CheckResult(
        "blocked-queries",
        Status.CRIT,
        f"{len(blocked)} sessions wait on locks held by pid {', '.join(map(str, blockers))}",
        {"blocked": [b.describe() for b in blocked[:10]], "blockers": blockers},
        remedy="Look at what the blocker runs; terminate it if it is stuck, never a replication session.",
    )


# --------------------------------------------------------------------------- aggregates of any table


def aggregate(target: Targets | str, sql: LiteralString, **params: Any) -> list[Row]:
    """Run a read-only aggregate with bound parameters (`%(name)s`); rows as dicts."""
    return _rows(target, sql, params)


# --------------------------------------------------------------------------- sessions: verdicts


def _idle_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        f"sessions idle inside an open transaction for over {args['older_than_s']:g} s, the oldest first: "
        f"one or two WARN, CRIT from {args['crit_count']} or when one has been open {args['crit_s']:g} s "
        "(transaction_seconds)"
    )
    return [Manual("sql", inline(*idle_in_transaction_sql(args["older_than_s"])), note)]


@by_hand(_idle_by_hand)
def check_idle_in_transaction(
    target: Targets | str, *, older_than_s: float = 60.0, crit_count: int = 3, crit_s: float = 300.0
) -> CheckResult:
    """Sessions idle inside an open transaction for longer than `older_than_s`.

    Each one holds a connection slot and whatever locks it took, and keeps
    vacuum from cleaning up behind it. WARN for one or two; CRIT from
    `crit_count` sessions, or when one has been idle for `crit_s`. The evidence
    lists each pid with its application, age and last statement, which is what
    a terminate plan will name.
    """
    try:
        idle = idle_in_transaction(target, older_than_s=older_than_s)
    except ProbeError as exc:
        return _unreachable("idle-in-transaction", exc)
    return idle_verdict(idle, older_than_s=older_than_s, crit_count=crit_count, crit_s=crit_s)


def idle_verdict(
    idle: Sequence[Backend], *, older_than_s: float, crit_count: int, crit_s: float
) -> CheckResult:
    """The verdict of `check_idle_in_transaction` on the sessions idle from `older_than_s`."""
    if not idle:
        return CheckResult(
            "idle-in-transaction", Status.OK, f"no session idle in a transaction for over {older_than_s:g} s"
        )
    oldest = max(b.transaction_seconds or 0.0 for b in idle)
    applications: dict[str, int] = {}
    for b in idle:
        applications[b.application or "?"] = applications.get(b.application or "?", 0) + 1
    status = Status.CRIT if len(idle) >= crit_count or oldest >= crit_s else Status.WARN
    top = max(applications, key=lambda name: applications[name])
    return CheckResult(
        "idle-in-transaction",
        status,
        f"{len(idle)} sessions idle in transaction for over {older_than_s:g} s "
        f"(oldest {oldest:.0f} s; most from application {top!r})",
        {
            "pids": [b.pid for b in idle],
            "by_application": applications,
            "sessions": [b.describe() for b in idle[:10]],
        },
        remedy="Terminate them (the mitigation lists each pid first), then find the code path that "
        "opens a transaction and never ends it; set idle_in_transaction_session_timeout.",
    )


def service_pool_queries(
    targets: Targets, service: str, *, window: str | None = None
) -> tuple[str, str, str]:
    """The PromQL of `check_service_pool`: the most requests waiting for a connection over the
    window, the pool's connections in use, and its size."""
    from checks import prometheus

    w = window or targets.query.rate_window
    pool = targets.signals["pool_connections"]
    busy = prometheus.series(
        targets, "pool_connections", service, f'{pool.label("state")}="{pool.value("in_use")}"'
    )
    return (
        f"max(max_over_time({prometheus.series(targets, 'pool_waiting', service)}[{w}]))",
        f"sum({busy})",
        f"sum({prometheus.series(targets, 'pool_max', service)})",
    )


def _service_pool_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    waiting, in_use, limit = service_pool_queries(targets, args["service"], window=args["window"])
    w = args["window"] or targets.query.rate_window
    return [
        Manual(
            "promql",
            waiting,
            f"requests waiting for a pool connection, the most over the last {w}: above 0 is CRIT",
        ),
        Manual("promql", f"{in_use} / {limit}", "the pool's connections in use against its size: 1 is WARN"),
    ]


@by_hand(_service_pool_by_hand)
def check_service_pool(
    targets: Targets, service: str = "api", *, window: str | None = None, client: Any = None
) -> CheckResult:
    """The service's own connection pool as it reports it to Prometheus.

    `db_pool_waiting` above 0 at any scrape of the window means requests queue
    for a connection (CRIT); every connection of the pool in use is a WARN. The
    database can have free slots while the service starves, or the reverse:
    read this next to `check_connections`.
    """
    from checks import prometheus

    if lacking := prometheus._lacking(
        targets, "service-pool", "pool_connections", "pool_max", "pool_waiting"
    ):
        return lacking
    job = targets.job(service)
    w = window or targets.query.rate_window
    waiting_query, in_use_query, limit_query = service_pool_queries(targets, service, window=window)
    try:
        waiting = prometheus.scalar(targets, waiting_query, client=client)
        in_use = prometheus.scalar(targets, in_use_query, client=client)
        limit = prometheus.scalar(targets, limit_query, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(
            "service-pool",
            exc,
            remedy="Prometheus itself may be down: read the pool from the service's /metrics.",
        )
    if waiting is None or limit is None:
        return CheckResult(
            "service-pool",
            Status.UNKNOWN,
            f"Prometheus has no pool metrics for job {job!r} (is the service scraped?)",
            {"job": job},
        )
    evidence = {"waiting_max": waiting, "in_use": in_use, "max": limit, "window": w}
    summary = (
        f"{in_use or 0:.0f} of {limit:.0f} pool connections in use, up to {waiting:.0f} requests waiting"
    )
    if waiting > 0:
        return CheckResult(
            "service-pool",
            Status.CRIT,
            summary + f" over the last {w}",
            evidence,
            remedy="Requests queue for a database connection: find what holds the database's slots.",
            measurements={"saturation": 1.0},  # past full: requests wait for a connection
        )
    saturation = {"saturation": (in_use or 0.0) / limit} if limit else {}
    if in_use is not None and in_use >= limit:
        return CheckResult(
            "service-pool",
            Status.WARN,
            summary,
            evidence,
            remedy="The pool is saturated.",
            measurements=saturation,
        )
    return CheckResult("service-pool", Status.OK, summary, evidence, measurements=saturation)


def exporter_query(targets: Targets) -> str:
    """The PromQL of `check_exporter`: the lowest `pg_up` of the PostgreSQL exporter's targets."""
    from checks import prometheus

    return f"min({prometheus.series(targets, 'postgres_up', None)})"


def _exporter_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = "what the PostgreSQL exporter last saw: 1 it reaches the database, 0 it cannot (CRIT)"
    return [Manual("promql", exporter_query(targets), note)]


@by_hand(_exporter_by_hand)
def check_exporter(targets: Targets, *, client: Any = None) -> CheckResult:
    """What the PostgreSQL exporter last saw (`pg_up`), from Prometheus: a third observer.

    CRIT when the exporter cannot reach the database; UNKNOWN when Prometheus
    cannot be asked or has no such series.
    """
    from checks import prometheus

    if lacking := prometheus._lacking(targets, "pg-exporter", "postgres_up"):
        return lacking
    promql = exporter_query(targets)
    try:
        value = prometheus.scalar(targets, promql, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("pg-exporter", exc, remedy="")
    if value is None:
        return unobserved(
            "pg-exporter",
            f"Prometheus has no {promql[4:-1]} series",
            configure="Check the PostgreSQL exporter's scrape job, or map signal postgres_up.",
            evidence={"query": promql},
        )
    if past := prometheus.stale(targets, "pg-exporter", "postgres_up", client=client):
        return past
    if value < 1:
        return CheckResult(
            "pg-exporter",
            Status.CRIT,
            "the exporter cannot reach PostgreSQL (pg_up 0)",
            {"query": promql, "pg_up": value},
            remedy="The database is down or refuses connections from its exporter too.",
        )
    return CheckResult(
        "pg-exporter", Status.OK, "the exporter reaches PostgreSQL (pg_up 1)", {"pg_up": value}
    )
