"""A PostgreSQL store (psycopg 3 + psycopg-pool): the only module that talks to PostgreSQL
besides store/pglease.py, which shares its pool.

Writes go through group commit (store/group.py): every change queued when a commit starts is
written in one transaction, and nothing is acknowledged before that transaction commits.
With a fence set (a leader's name and term), each write transaction first reads the lease row
FOR SHARE and fails with Fenced unless the lease still names that leader and term: a takeover
(an UPDATE of that row) waits for the write, and every write after it fails. So at most one
manager's writes succeed for any term.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from store.base import BadDatabaseURL
from store.group import Encoded, GroupCommit, StoreClosed
from task.errors import Unavailable

__all__ = ["PostgresStore", "BadDatabaseURL", "DatabaseUnavailable", "Fenced", "StoreClosed", "redact"]

log = logging.getLogger(__name__)

LEASE_NAME = "leader"
_MIGRATION_LOCK = 0x0C0A  # pg_advisory_xact_lock key: managers starting at once migrate one at a time

# Each entry moves the schema from version i to i+1; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE SEQUENCE IF NOT EXISTS orca_rev",
        """CREATE TABLE IF NOT EXISTS orca_items (
               kind TEXT NOT NULL,
               key TEXT NOT NULL,
               seq BIGINT GENERATED ALWAYS AS IDENTITY,
               rev BIGINT NOT NULL DEFAULT nextval('orca_rev'),
               value TEXT NOT NULL,
               PRIMARY KEY (kind, key))""",
        "CREATE INDEX IF NOT EXISTS orca_items_kind_seq ON orca_items (kind, seq)",
        """CREATE TABLE IF NOT EXISTS orca_lease (
               name TEXT PRIMARY KEY,
               holder TEXT NOT NULL DEFAULT '',
               address TEXT NOT NULL DEFAULT '',
               term BIGINT NOT NULL DEFAULT 0,
               expires_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        f"INSERT INTO orca_lease (name) VALUES ('{LEASE_NAME}') ON CONFLICT DO NOTHING",
        """CREATE TABLE IF NOT EXISTS orca_managers (
               name TEXT PRIMARY KEY,
               address TEXT NOT NULL,
               role TEXT NOT NULL,
               last_seen TIMESTAMPTZ NOT NULL DEFAULT now())""",
    ),
)

# A manager frozen (kill -STOP) inside a write transaction holds the lease row FOR SHARE, and
# only PostgreSQL's idle-in-transaction timeout ends that session. The server arms it only
# while it waits for the first message of a request: never between the messages of an
# extended-protocol request (Parse, Bind, ... Sync) nor inside a pipeline, which psycopg's
# executemany uses. A client frozen there kept every other manager from the lease (CI). So
# every statement goes as one simple-protocol message (client-side binding, ClientCursor) and
# a run of changes as one statement: wherever the client stops, the timeout runs.
_UPSERT = ("INSERT INTO orca_items (kind, key, value) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
           "ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, rev = nextval('orca_rev')")
_DELETE = "DELETE FROM orca_items WHERE (kind, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"


class DatabaseUnavailable(Unavailable):
    """PostgreSQL did not answer or failed the statement (503: try again)."""


class Fenced(Unavailable):
    """A write was refused because this manager no longer holds the lease for its term."""

    def __init__(self, message: str, holder: str = "", term: int = 0) -> None:
        super().__init__(message)
        self.holder, self.term = holder, term


def redact(url: str) -> str:
    """The URL as `postgresql://user@host:port/dbname`: never the password, never options."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresStore(GroupCommit):
    """Store protocol over PostgreSQL: one table `orca_items` (kind, key) -> JSON text.

    Args:
        url: a libpq URL or conninfo string (ORCA_DATABASE_URL).
        pool_size: connections kept at most; reads and the group committer share them.
        timeout: seconds to wait for a connection (at start, and for each statement's
            connection later); past it the call raises DatabaseUnavailable.
    Raises:
        BadDatabaseURL: at start, the URL is malformed or the server cannot be reached.
    """

    def __init__(self, url: str, pool_size: int = 8, timeout: float = 5.0, hold_limit: float = 5.0) -> None:
        """`hold_limit`: seconds a session may sit idle inside a transaction before the server
        ends it. A manager frozen (kill -STOP) in the middle of a write holds the lease row
        FOR SHARE; without the limit, no other manager could ever claim the lease."""
        super().__init__()
        self.name = redact(url)
        self.fence: tuple[str, int] | None = None  # (holder, term) every write must still hold
        self.on_fenced: Callable[[Fenced], None] = lambda error: None
        _check_reachable(url, self.name, timeout)
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False,
                                   kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout)),
                                           "cursor_factory": psycopg.ClientCursor,
                                           "options": "-c idle_in_transaction_session_timeout="
                                                      f"{max(100, int(hold_limit * 1000))}"},
                                   name="orca")
        try:
            self.pool.open(wait=True, timeout=timeout)
            self._migrate()
        except (psycopg.Error, PoolTimeout) as exc:
            self.pool.close()
            raise BadDatabaseURL(f"ORCA_DATABASE_URL {self.name}: {_reason(exc)}") from None

    # ----- schema

    def _migrate(self) -> None:
        """Create the schema, or bring it up to the last version, in one transaction."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS orca_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM orca_schema").fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise psycopg.DataError(f"schema version {version} is newer than this Orca knows "
                                        f"({len(MIGRATIONS)}): upgrade Orca")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO orca_schema (version) VALUES (%s)", (len(MIGRATIONS),))
            elif version < len(MIGRATIONS):
                conn.execute("UPDATE orca_schema SET version = %s", (len(MIGRATIONS),))
                log.info("database schema migrated from version %d to %d", version, len(MIGRATIONS))

    # ----- writes

    def _write(self, items: list[Encoded]) -> None:
        """One transaction: the fence check, then the changes in order."""
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if self.fence is not None:
                    self._check_fence(cur, *self.fence)
                for start, end in _runs(items):
                    last = {(kind, key): value for kind, key, value in items[start:end]}  # one row once
                    kinds, keys = [k for k, _ in last], [key for _, key in last]
                    if items[start][2] is None:
                        cur.execute(_DELETE, (kinds, keys))
                    else:
                        cur.execute(_UPSERT, (kinds, keys, list(last.values())))
        except Fenced as exc:
            self.on_fenced(exc)
            raise
        except (psycopg.Error, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"database {self.name}: {_reason(exc)}") from None

    @staticmethod
    def _check_fence(cur: psycopg.Cursor, holder: str, term: int) -> None:
        cur.execute("SELECT holder, term FROM orca_lease WHERE name = %s FOR SHARE", (LEASE_NAME,))
        row = cur.fetchone()
        current = (row[0], row[1]) if row else ("", 0)
        if current != (holder, term):
            raise Fenced(f"not the leader: this manager's term is {term}, the lease's is {current[1]} "
                         f"(held by {current[0] or 'nobody'})", current[0], current[1])

    # ----- reads

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            with self.pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"database {self.name}: {_reason(exc)}") from None

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT value FROM orca_items WHERE kind = %s AND key = %s", (kind, key))
        return json.loads(rows[0][0]) if rows else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT value FROM orca_items WHERE kind = %s ORDER BY seq", (kind,))
        return [json.loads(r[0]) for r in rows]

    def count(self, kind: str) -> int:
        return self._query("SELECT COUNT(*) FROM orca_items WHERE kind = %s", (kind,))[0][0]

    def revision(self) -> tuple[int, int]:
        """A value that changes whenever any item is written or deleted (followers poll it)."""
        row = self._query("SELECT COALESCE(MAX(rev), 0), COUNT(*) FROM orca_items", ())[0]
        return row[0], row[1]

    def _close(self) -> None:
        self.pool.close()


def _runs(items: list[Encoded]):
    """(start, end) of each run of consecutive upserts or consecutive deletes, in order."""
    start = 0
    for i in range(1, len(items) + 1):
        if i == len(items) or (items[i][2] is None) != (items[start][2] is None):
            yield start, i
            start = i


def _check_reachable(url: str, name: str, timeout: float) -> None:
    """Connect once, directly, for a clear message: the pool only says it timed out."""
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.Error:  # its message quotes the string, password included: not repeated
        raise BadDatabaseURL("ORCA_DATABASE_URL is not a PostgreSQL URL "
                             "(postgresql://USER:PASSWORD@HOST:PORT/DBNAME)") from None
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
    except psycopg.Error as exc:
        raise BadDatabaseURL(f"ORCA_DATABASE_URL {name}: cannot connect: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, which never holds the password (libpq does not echo it)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
