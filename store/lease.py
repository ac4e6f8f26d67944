"""Leader election by a lease: the pure rules, and a lease in memory (tests, simulation).

One row names the leader, its address, a term and an expiry. A manager claims it every few
seconds: the holder renews it; anyone else takes it over only once it has expired (or was
given up), and a takeover raises the term by one. The row lives in the same database as the
state (store/pglease.py), whose writes check the term (store/postgres.py): no consensus is
written here, the database's transactions are the consensus.
"""
from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

NOBODY = ""


class Claim(str, enum.Enum):
    """What a manager does with the lease it has just read."""

    RENEW = "renew"  # it holds it for the term it knows: extend it
    TAKE = "take"  # nobody holds it (expired, given up) or an earlier run of this manager did
    FOLLOW = "follow"  # somebody else holds it


@dataclass(frozen=True)
class Lease:
    """The lease row as one manager saw it."""

    holder: str = NOBODY
    address: str = ""
    term: int = 0
    expired: bool = True  # by the database's clock, never a manager's

    @property
    def leader(self) -> str | None:
        """The name of the manager that may act now, or None."""
        return self.holder if self.holder and not self.expired else None


@dataclass(frozen=True)
class ManagerSeen:
    """One manager in the registry next to the lease: its last claim."""

    name: str
    address: str
    role: str  # leader | follower | stopped
    last_seen: str  # ISO 8601, UTC
    age: float = 0.0  # seconds since last_seen, by the database's clock


def decide(lease: Lease, me: str, my_term: int | None) -> Claim:
    """The claim `me` (holding `my_term`, None when following) makes on `lease`.

    A holder renews even an expired lease as long as its term is still the row's: nobody took
    over, so nobody else acted. The same name with another term is an earlier run of this
    manager (names are unique among live managers: they default to the listen address), so it
    takes over at once rather than wait out the TTL.
    """
    if lease.holder == me and my_term is not None and lease.term == my_term:
        return Claim.RENEW
    if lease.holder in (NOBODY, me) or lease.expired:
        return Claim.TAKE
    return Claim.FOLLOW


def claimed(lease: Lease, claim: Claim, me: str, address: str) -> Lease:
    """The lease after `claim` is written (expiry extended by the caller's TTL)."""
    if claim is Claim.RENEW:
        return Lease(lease.holder, lease.address, lease.term, expired=False)
    if claim is Claim.TAKE:
        return Lease(me, address, lease.term + 1, expired=False)
    return lease


class LeaseBackend(Protocol):
    """Where the lease lives: store.pglease.PostgresLease, or MemoryLease below."""

    def claim(self, me: str, address: str, my_term: int | None, ttl: float) -> Lease: ...
    def resign(self, me: str, term: int) -> None: ...
    def managers(self) -> tuple[Lease, list[ManagerSeen]]: ...


@dataclass
class MemoryLease:
    """The lease in memory, with an injected clock: for unit tests and the simulation.
    `check(holder, term)` is the fence a store applies to each write."""

    clock: Callable[[], float] = time.monotonic
    holder: str = NOBODY
    address: str = ""
    term: int = 0
    expires_at: float = 0.0
    seen: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def current(self) -> Lease:
        return Lease(self.holder, self.address, self.term, self.clock() >= self.expires_at)

    def claim(self, me: str, address: str, my_term: int | None, ttl: float) -> Lease:
        with self._lock:
            before = self.current()
            decision = decide(before, me, my_term)
            after = claimed(before, decision, me, address)
            if decision is not Claim.FOLLOW:
                self.holder, self.address, self.term = after.holder, after.address, after.term
                self.expires_at = self.clock() + ttl
            self.seen[me] = (address, "leader" if after.holder == me else "follower", self.clock())
            return after

    def resign(self, me: str, term: int) -> None:
        with self._lock:
            if (self.holder, self.term) == (me, term):
                self.holder, self.expires_at = NOBODY, self.clock()
            if me in self.seen:
                self.seen[me] = (self.seen[me][0], "stopped", self.clock())

    def check(self, holder: str, term: int) -> bool:
        """True if a write fenced by (holder, term) may commit now."""
        with self._lock:
            return (self.holder, self.term) == (holder, term)

    def managers(self) -> tuple[Lease, list[ManagerSeen]]:
        with self._lock:
            now = self.clock()
            return self.current(), [ManagerSeen(name, a, role, f"{at:.3f}", now - at)
                                    for name, (a, role, at) in sorted(self.seen.items())]
