"""The lease and the write fence on a real PostgreSQL: at most one manager's writes succeed
for any term, a takeover waits for a write in flight, the schema is created once by managers
starting together."""
from __future__ import annotations

import threading
import time

import pytest

from store.pglease import PostgresLease
from store.postgres import DatabaseUnavailable, Fenced, PostgresStore
from tests.integration.conftest import wait_for


@pytest.fixture
def two(pg_database):
    """Two managers' stores on one database, and their leases."""
    a, b = PostgresStore(pg_database), PostgresStore(pg_database)
    yield (a, PostgresLease(a)), (b, PostgresLease(b))
    a.close()
    b.close()


def test_only_the_current_terms_writes_commit(two):
    (store_a, lease_a), (store_b, lease_b) = two
    first = lease_a.claim("a", "a:1", None, ttl=0.5)
    assert (first.holder, first.term) == ("a", 1)
    store_a.fence = ("a", 1)
    store_a.put("task", "t1", {"by": "a"})
    taken = wait_for(lambda: (lease := lease_b.claim("b", "b:1", None, ttl=30)).holder == "b" and lease,
                     timeout=10, what="b to take over the expired lease")
    assert taken.term == 2
    store_b.fence = ("b", 2)
    deposed = []
    store_a.on_fenced = deposed.append
    with pytest.raises(Fenced, match="term is 1, the lease's is 2"):
        store_a.put_many([("task", "t2", {"by": "a"}), ("task", "t1", {"by": "a, again"})])
    assert len(deposed) == 1  # the store tells its manager to step down
    store_b.put("task", "t3", {"by": "b"})
    assert store_b.get("task", "t1") == {"by": "a"}  # the refused batch left nothing behind
    assert store_b.get("task", "t2") is None and store_b.get("task", "t3") == {"by": "b"}
    assert lease_a.claim("a", "a:1", 1, ttl=30).holder == "b"  # the old leader now follows


def test_a_takeover_waits_for_a_write_in_flight(two, pg_database):
    """The fence check holds the lease row FOR SHARE until the write commits: a takeover's
    UPDATE waits for it, and every later write of the old term fails."""
    import psycopg

    (store_a, lease_a), (store_b, lease_b) = two
    lease_a.claim("a", "a:1", None, ttl=0.2)
    store_a.fence = ("a", 1)
    with psycopg.connect(pg_database, autocommit=True) as probe:
        wait_for(lambda: probe.execute("SELECT expires_at <= clock_timestamp() FROM orca_lease").fetchone()[0],
                 timeout=10, what="the lease to expire")
        with psycopg.connect(pg_database) as write:  # a's write in flight, past its fence check
            write.execute("SELECT term FROM orca_lease WHERE name = 'leader' FOR SHARE")
            result = {}
            claimer = threading.Thread(target=lambda: result.update(lease=lease_b.claim("b", "b:1", None, ttl=30)))
            claimer.start()
            wait_for(lambda: probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND query LIKE '%orca_lease%FOR UPDATE%'").fetchone()[0],
                     timeout=10, what="the takeover to wait for the write")
            assert "lease" not in result
            write.commit()
        claimer.join(10)
    assert result["lease"].holder == "b" and result["lease"].term == 2
    with pytest.raises(Fenced):
        store_a.put("task", "late", {})


def test_managers_starting_together_create_the_schema_once(pg_database):
    stores, errors = [], []

    def open_one():
        try:
            stores.append(PostgresStore(pg_database))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(stores) == 4
    stores[0].put("task", "x", {"ok": True})
    assert all(s.get("task", "x") == {"ok": True} for s in stores)
    for store in stores:
        store.close()


def test_a_manager_frozen_inside_a_write_cannot_keep_the_lease_row_locked(pg_database):
    """kill -STOP of the leader while its write holds the lease row FOR SHARE: the server ends
    that idle transaction after the store's hold limit, so another manager's claim, which
    waits 2 s at most per try, gets the lease once it has expired (CI saw the follower never
    take over)."""
    frozen, other = PostgresStore(pg_database, hold_limit=1.0), PostgresStore(pg_database)
    try:
        lease = PostgresLease(frozen).claim("a", "a:1", None, ttl=0.5)
        assert lease.holder == "a"
        connection = frozen.pool.getconn()  # a's write, past its fence check, then a's freeze
        connection.autocommit = False
        connection.execute("SELECT term FROM orca_lease WHERE name = 'leader' FOR SHARE")

        def claim():
            try:
                return PostgresLease(other).claim("b", "b:1", None, ttl=30)
            except DatabaseUnavailable:  # the row is still locked: a lock timeout
                return None
        taken = wait_for(lambda: (found := claim()) is not None and found.holder == "b" and found,
                         timeout=20, what="b to take the lease from a frozen a")
        assert taken.term == 2
        connection.close()
        frozen.pool.putconn(connection)
    finally:
        frozen.close()
        other.close()


BATCH = [("task", "t1", {"n": 1}), ("task", "t2", {"n": 2}), ("task", "t1", {"n": 3}),
         ("task", "t0", None), ("node", "n1", {"up": True})]
FROZEN_ACTIONS = {  # what the leader was doing when it froze: a write, or renewing its lease
    "write": lambda store, term: store.put_many(BATCH),
    "renewal": lambda store, term: PostgresLease(store).claim("a", "a:1", term, ttl=0.2),
}


@pytest.mark.parametrize("action", sorted(FROZEN_ACTIONS))
def test_a_manager_frozen_at_any_byte_it_sends_cannot_keep_the_lease_row_locked(pg_database, action):
    """The leader's write (or renewal) is cut, as kill -STOP would cut it, after each message
    it sends and in the middle of each: wherever it stops, the server ends its session within
    the hold limit and another manager takes the lease. CI saw a follower never take over: a
    write sent in pipeline mode (psycopg's executemany) left the server waiting for the rest
    of the pipeline with the row locked, where PostgreSQL's idle-in-transaction timeout does
    not run."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from tests.integration.freezing_proxy import FreezingProxy, frontend_messages

    parts = urlsplit(pg_database)
    proxy = FreezingProxy((parts.hostname, parts.port))
    proxied = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}"),
                                        query="application_name=frozen"))
    other = PostgresStore(pg_database)

    def cut_at(limit: int | None) -> tuple[bool, bytes]:
        """Lead with a fresh store through the proxy, then run the action cut after `limit`
        bytes; (whether another manager took the lease, the bytes the action sent)."""
        frozen = PostgresStore(proxied, hold_limit=0.3)
        try:
            lease = wait_for(lambda: (found := PostgresLease(frozen).claim("a", "a:1", None, ttl=0.2)).holder == "a"
                             and found, timeout=10, what="a to lead")
            frozen.fence = ("a", lease.term)
            proxy.arm(limit)
            runner = threading.Thread(target=_swallow, args=(FROZEN_ACTIONS[action], frozen, lease.term), daemon=True)
            runner.start()
            if limit is None:
                runner.join(10)
                assert not runner.is_alive()
                return True, bytes(proxy.recorded)
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                if _claim_or_none(other, "b") == "b":
                    return True, bytes(proxy.recorded)
            return False, bytes(proxy.recorded)
        finally:
            proxy.arm(None)
            with psycopg.connect(pg_database, autocommit=True) as admin:  # a stuck session, ended
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = 'frozen'")
            frozen.close()

    try:
        whole = cut_at(None)[1]
        if action == "write":
            assert other.get("task", "t1") == {"n": 3} and other.get("task", "t0") is None
        ends = [end for _, end in frontend_messages(whole)]
        assert ends and ends[-1] == len(whole), "the action's bytes are whole messages"
        cuts = ends[:-1] + [(a + b) // 2 for a, b in zip([0] + ends, ends)]  # and inside each message
        assert len(cuts) >= 6, cuts  # BEGIN, a statement or more, COMMIT: each cut twice
        stuck = [(cut, whole[:cut][-40:]) for cut in sorted(set(cuts)) if not cut_at(cut)[0]]
        assert not stuck, stuck
    finally:
        other.close()
        proxy.close()


def _claim_or_none(store: PostgresStore, me: str) -> str | None:
    """The lease's holder after `me` claims it, or None while the row stays locked."""
    try:
        return PostgresLease(store).claim(me, f"{me}:1", None, ttl=0.2).holder
    except DatabaseUnavailable:  # a lock timeout
        return None


def _swallow(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # noqa: BLE001 - the cut action fails when its session is ended
        pass
