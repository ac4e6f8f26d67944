"""The lease in PostgreSQL: one row of `orca_lease`, claimed in a transaction with
SELECT ... FOR UPDATE, with expiry judged by the database's clock (never a manager's); and the
registry of managers (`orca_managers`) updated in the same transaction. Shares the pool of
store.postgres.PostgresStore, whose writes check this row's term.
"""
from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from store.lease import Claim, Lease, ManagerSeen, claimed, decide
from store.postgres import LEASE_NAME, DatabaseUnavailable, PostgresStore

_READ = ("SELECT holder, address, term, expires_at <= clock_timestamp() FROM orca_lease "
         "WHERE name = %s FOR UPDATE")
_RENEW = "UPDATE orca_lease SET expires_at = clock_timestamp() + make_interval(secs => %s) WHERE name = %s"
_TAKE = ("UPDATE orca_lease SET holder = %s, address = %s, term = %s, "
         "expires_at = clock_timestamp() + make_interval(secs => %s) WHERE name = %s")
_SEEN = ("INSERT INTO orca_managers (name, address, role, last_seen) VALUES (%s, %s, %s, clock_timestamp()) "
         "ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, role = EXCLUDED.role, "
         "last_seen = EXCLUDED.last_seen")


class PostgresLease:
    """LeaseBackend over the store's database.

    Raises (every method): DatabaseUnavailable when the database does not answer.
    """

    LOCK_TIMEOUT = "2s"  # a claim never waits long behind a write that holds the row

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def claim(self, me: str, address: str, my_term: int | None, ttl: float) -> Lease:
        """Renew, take over or follow, in one transaction; return the lease as it now is."""
        def run(conn: psycopg.Connection) -> Lease:
            conn.execute(f"SET LOCAL lock_timeout = '{self.LOCK_TIMEOUT}'")
            holder, addr, term, expired = conn.execute(_READ, (LEASE_NAME,)).fetchone()
            before = Lease(holder, addr, term, expired)
            decision = decide(before, me, my_term)
            if decision is Claim.RENEW:
                conn.execute(_RENEW, (ttl, LEASE_NAME))
            elif decision is Claim.TAKE:
                conn.execute(_TAKE, (me, address, term + 1, ttl, LEASE_NAME))
            after = claimed(before, decision, me, address)
            conn.execute(_SEEN, (me, address, "leader" if after.holder == me else "follower"))
            return after
        return self._transaction(run)

    def resign(self, me: str, term: int) -> None:
        """Give the lease up now (SIGTERM), so a follower takes over at its next claim."""
        def run(conn: psycopg.Connection) -> None:
            conn.execute("UPDATE orca_lease SET holder = '', expires_at = clock_timestamp() "
                         "WHERE name = %s AND holder = %s AND term = %s", (LEASE_NAME, me, term))
            conn.execute("UPDATE orca_managers SET role = 'stopped', last_seen = clock_timestamp() "
                         "WHERE name = %s", (me,))
        self._transaction(run)

    def managers(self) -> tuple[Lease, list[ManagerSeen]]:
        """The lease and every manager that ever claimed it, by name."""
        def run(conn: psycopg.Connection):
            holder, addr, term, expired = conn.execute(
                "SELECT holder, address, term, expires_at <= clock_timestamp() FROM orca_lease WHERE name = %s",
                (LEASE_NAME,)).fetchone()
            rows = conn.execute(
                "SELECT name, address, role, to_char(last_seen AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), EXTRACT(EPOCH FROM clock_timestamp() - last_seen) "
                "FROM orca_managers ORDER BY name").fetchall()
            return Lease(holder, addr, term, expired), [ManagerSeen(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
        return self._transaction(run)

    def _transaction(self, run):
        try:
            with self._store.pool.connection() as conn, conn.transaction():
                return run(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"lease: database {self._store.name}: "
                                      f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
