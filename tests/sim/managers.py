"""Several managers in the simulation: real Managers and Leaderships (manager/leader.py) over
one shared database (a MemoryStore and a MemoryLease behind one lock), real Workers on fake
hosts, one fake clock. Faults hit the leader: freezes (shorter and longer than the TTL; on
waking it finishes a pass it had begun, with its stale memory), kill -9 and restart, cuts
from the database, resignation.

The database is modelled as PostgreSQL behaves for Orca: a write commits only if the lease
row still names its manager's (name, term), checked in the same transaction (FencedStore);
a manager cut off from it can neither write, read nor claim. Workers keep a TermFence
(task/wire.py) and refuse commands with an older term, as worker/fence.py does; the check
happens when a request reaches a worker (no message faults here: the base simulation covers
those).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from manager.client import StaleTermRefused
from manager.leader import Leadership
from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from store.lease import MemoryLease
from task import Unavailable
from task.wire import StaleTerm, TermFence
from tests.sim.net import SimNetwork
from tests.sim.world import DOWN_AFTER, MARGIN

TTL = 6.0
NOT_LEADING = -1
COMMANDS = ("send_event", "stop_task")


class DatabaseDown(Unavailable):
    """The manager is cut off from the database."""


class FencedOut(Unavailable):
    """The lease no longer names this manager with its term: the write is refused."""


@dataclass
class Database:
    """The shared database: items, the lease, and which manager committed in which term."""

    clock: Callable[[], float]
    store: MemoryStore = field(default_factory=MemoryStore)
    lease: MemoryLease = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    commits: dict[int, set[str]] = field(default_factory=dict)  # term -> managers whose writes committed
    stale_commits: list[str] = field(default_factory=list)  # writes of a term older than one that committed

    def __post_init__(self) -> None:
        self.lease = MemoryLease(clock=self.clock)


class FencedStore:
    """One manager's connection to the database (the Store protocol)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name = db, name
        self.fence = (name, NOT_LEADING)
        self.cut = False
        self.failing = 0  # commits to come of which every other one fails (a flaky database; the lease holds)
        self.refused = 0

    def submit(self, items) -> Callable[[], None]:
        items, fence = list(items), self.fence

        def commit() -> None:  # the wait of group commit: nothing is acknowledged before it
            with self.db.lock:
                if self.cut:
                    raise DatabaseDown(f"manager {self.name} is cut off from the database")
                if self.failing:
                    self.failing -= 1
                    if self.failing % 2:
                        raise DatabaseDown(f"manager {self.name}: the commit failed")
                if not self.db.lease.check(*fence):
                    self.refused += 1
                    raise FencedOut(f"manager {self.name}: term {fence[1]} is not the lease's")
                newest = max(self.db.commits, default=0)
                if fence[1] < newest:
                    self.db.stale_commits.append(f"{self.name} committed in term {fence[1]} after term {newest}")
                self.db.store.submit(items)
                self.db.commits.setdefault(fence[1], set()).add(self.name)
        return commit

    def put_many(self, items) -> None:
        self.submit(items)()

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.put_many([(kind, key, value)])

    def delete(self, kind: str, key: str) -> None:
        self.put_many([(kind, key, None)])

    def _read(self):
        if self.cut:
            raise DatabaseDown(f"manager {self.name} is cut off from the database")
        return self.db.store

    def get(self, kind: str, key: str):
        return self._read().get(kind, key)

    def list(self, kind: str):
        return self._read().list(kind)

    def count(self, kind: str) -> int:
        return self._read().count(kind)

    def close(self) -> None:
        pass


class LeaseLink:
    """The lease as one manager reaches it (fails while it is cut off)."""

    def __init__(self, db: Database, store: FencedStore) -> None:
        self.db, self.store = db, store

    def claim(self, me, address, my_term, ttl):
        if self.store.cut:
            raise DatabaseDown("cut off")
        return self.db.lease.claim(me, address, my_term, ttl)

    def resign(self, me, term):
        if self.store.cut:
            raise DatabaseDown("cut off")
        self.db.lease.resign(me, term)

    def managers(self):
        return self.db.lease.managers()


class TermNet:
    """One manager's worker client: the shared network, with its term checked by each
    worker's fence (reset when the worker process restarts)."""

    def __init__(self, net: SimNetwork, fences: dict[tuple[str, int], TermFence]) -> None:
        self.net, self.fences = net, fences
        self.term: int | None = None
        self.on_stale_term: Callable[[int], None] = lambda seen: None
        self.refused = 0

    def _admit(self, address: str, method: str) -> None:
        host = self.net.hosts[address]
        if not host.reachable:
            return  # the network answers for it
        fence = self.fences.setdefault((address, host.incarnation), TermFence())
        try:
            fence.admit(self.term, command=method in COMMANDS)
        except StaleTerm as exc:
            self.refused += 1
            self.on_stale_term(exc.seen)
            raise StaleTermRefused(f"worker {address}: {exc}") from None

    def __getattr__(self, method: str):
        call = getattr(self.net, method)

        def fenced(address: str, *args, **kwargs):
            self._admit(address, method)
            return call(address, *args, **kwargs)
        return fenced


class SimManager:
    """One manager process: a real Manager and a real Leadership over its links."""

    def __init__(self, name: str, db: Database, net: SimNetwork, fences, hosts: list[str], clock) -> None:
        self.name = name
        self.store = FencedStore(db, name)
        self.client = TermNet(net, fences)
        self.manager = Manager(hosts, self.client, RoundRobin(), store=self.store, down_after=DOWN_AFTER,
                               clock=clock, disconnect_margin=MARGIN)
        self.ready_term: int | None = None
        self.frozen_for = 0  # rounds left frozen
        self.zombie = False  # frozen in the middle of a pass: it finishes it on waking
        self.leadership = Leadership(LeaseLink(db, self.store), name, name, TTL, clock=clock,
                                     on_elected=self._elected, on_deposed=self._deposed, on_follow=self._refresh)
        self.client.on_stale_term = lambda seen: self.leadership.step_down(f"a worker has seen term {seen}")

    @property
    def leading(self) -> bool:
        return self.leadership.is_leader and self.ready_term == self.leadership.term

    def _elected(self, term: int) -> None:
        self.store.fence = (self.name, term)
        self.client.term = term
        self.manager.reload()
        self.ready_term = term

    def _deposed(self) -> None:
        self.ready_term = None
        self.store.fence = (self.name, NOT_LEADING)

    def _refresh(self) -> None:
        try:
            self.manager.reload()
        except DatabaseDown:
            pass
