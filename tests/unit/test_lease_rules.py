"""Leader election: the pure claim rules, the lease in memory, and Leadership's timing of
when a manager may act (fake clock, no database)."""
from __future__ import annotations

import pytest

from manager.leader import SAFETY, Leadership
from store.lease import Claim, Lease, MemoryLease, claimed, decide


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("lease, me, my_term, expected", [
    (Lease("a", "x", 3, expired=False), "a", 3, Claim.RENEW),
    (Lease("a", "x", 3, expired=True), "a", 3, Claim.RENEW),  # nobody took over: still ours
    (Lease("a", "x", 3, expired=False), "b", None, Claim.FOLLOW),
    (Lease("a", "x", 3, expired=True), "b", None, Claim.TAKE),
    (Lease("", "", 3, expired=True), "b", None, Claim.TAKE),  # given up
    (Lease("", "", 3, expired=False), "b", None, Claim.TAKE),
    (Lease("a", "x", 4, expired=False), "a", 3, Claim.TAKE),  # an earlier run of "a" held term 4
    (Lease("a", "x", 4, expired=False), "a", None, Claim.TAKE),
    (Lease("b", "y", 4, expired=False), "a", 3, Claim.FOLLOW),  # deposed: follow
])
def test_decide(lease, me, my_term, expected):
    assert decide(lease, me, my_term) is expected


def test_a_takeover_raises_the_term_by_one_and_a_renewal_keeps_it():
    lease = Lease("a", "x", 7, expired=True)
    assert claimed(lease, Claim.TAKE, "b", "y") == Lease("b", "y", 8, expired=False)
    assert claimed(lease, Claim.RENEW, "a", "x").term == 7
    assert claimed(lease, Claim.FOLLOW, "b", "y") == lease


def test_memory_lease_takeover_only_after_expiry_and_fences_the_old_term():
    clock = Clock()
    lease = MemoryLease(clock=clock)
    assert lease.claim("a", "x", None, ttl=10).term == 1
    assert lease.claim("b", "y", None, ttl=10).holder == "a"  # not expired: b follows
    clock.now += 11
    taken = lease.claim("b", "y", None, ttl=10)
    assert (taken.holder, taken.term) == ("b", 2)
    assert not lease.check("a", 1) and lease.check("b", 2)
    assert lease.claim("a", "x", 1, ttl=10).holder == "b"  # the old leader wakes and follows
    lease.resign("b", 2)
    assert lease.claim("a", "x", None, ttl=10).term == 3  # given up: taken at once


def _leadership(lease, name, clock, events, ttl=9.0):
    return Leadership(lease, name, name, ttl, clock=clock,
                      on_elected=lambda term: events.append((name, "elected", term)),
                      on_deposed=lambda: events.append((name, "deposed")),
                      on_follow=lambda: events.append((name, "follow")))


def test_one_leader_then_a_frozen_leader_stops_acting_before_it_can_be_replaced():
    clock, events = Clock(), []
    lease = MemoryLease(clock=clock)
    a, b = _leadership(lease, "a", clock, events), _leadership(lease, "b", clock, events)
    a.tick()
    b.tick()
    assert a.is_leader and not b.is_leader and a.term == 1
    assert b.leader() == ("a", "a", 1)
    clock.now += 9.0 * SAFETY  # a is frozen: no renewal
    assert not a.is_leader  # it stops acting on its own clock, before the lease expires
    assert not b.is_leader
    clock.now += 9.0 * (1 - SAFETY) + 0.1  # now expired by the lease's clock
    b.tick()
    assert b.is_leader and b.term == 2
    a.tick()  # a wakes up: its claim finds b's term and it steps down
    assert not a.is_leader and a.term is None
    assert ("a", "deposed") in events and ("b", "elected", 2) in events


def test_resign_hands_over_at_the_next_follower_claim():
    clock, events = Clock(), []
    lease = MemoryLease(clock=clock)
    a, b = _leadership(lease, "a", clock, events), _leadership(lease, "b", clock, events)
    a.tick()
    b.tick()
    a.resign()
    assert not a.is_leader
    b.tick()  # no time passed: the lease was given up
    assert b.is_leader and b.term == 2
    a.tick()  # a resigned for good: it claims nothing any more
    assert lease.current().holder == "b"


def test_a_leader_that_cannot_reach_the_database_steps_down_once_its_validity_ends():
    clock, events = Clock(), []
    lease = MemoryLease(clock=clock)
    a = _leadership(lease, "a", clock, events)
    a.tick()

    def broken(*args, **kwargs):
        raise ConnectionError("database down")
    lease.claim = broken
    clock.now += 1.0
    a.tick()
    assert a.is_leader and a.term == 1  # still within its validity
    clock.now += 9.0
    a.tick()
    assert not a.is_leader and a.term is None and events[-1] == ("a", "deposed")


def test_step_down_on_a_fenced_write_and_reelection_with_a_new_term():
    clock, events = Clock(), []
    lease = MemoryLease(clock=clock)
    a = _leadership(lease, "a", clock, events)
    a.tick()
    a.step_down("a write was fenced")
    assert not a.is_leader
    a.tick()  # the lease still names a with term 1, but a no longer knows a term: it takes a new one
    assert a.is_leader and a.term == 2


def test_wait_for_leader_gives_up_after_its_timeout():
    clock = Clock()
    a = Leadership(MemoryLease(clock=clock), "a", "a", 9.0)
    assert a.wait_for_leader(0.05) is None


def test_a_failed_take_over_leaves_the_manager_following_and_the_next_claim_tries_again():
    """The reload on election reads the database, which can fail: the manager must not lead on
    half a state, and its claims must go on (a lone manager would otherwise never lead again)."""
    clock, events, failures = Clock(), [], [RuntimeError("database unavailable")]

    def elected(term):
        if failures:
            raise failures.pop()
        events.append(("elected", term))

    a = Leadership(MemoryLease(clock=clock), "a", "a", 9.0, clock=clock, on_elected=elected,
                   on_deposed=lambda: events.append(("deposed",)))
    a.tick()
    assert not a.is_leader and a.term is None and events == [("deposed",)]
    a.tick()
    assert a.is_leader and a.term == 2 and events[-1] == ("elected", 2)


def test_the_claiming_loop_survives_a_pass_that_raises():
    import threading

    clock, calls, halt = Clock(), [], threading.Event()

    def follow():
        calls.append(clock.now)
        if len(calls) == 1:
            raise RuntimeError("refresh failed")
        halt.set()

    lease = MemoryLease(clock=clock)
    lease.claim("b", "b", None, ttl=9.0)  # b leads: a follows and refreshes its reads
    a = Leadership(lease, "a", "a", 9.0, clock=clock, on_follow=follow)
    a.run(halt)  # returns only once the second pass ran
    assert len(calls) == 2
