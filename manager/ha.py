"""Several managers on one PostgreSQL database: wires a Leadership (manager/leader.py) to one
manager process's parts.

- Elected: the store's fence takes the new term (every write checks it), the worker client
  sends it (workers refuse older ones), the manager reloads its state from the database and
  gives every worker one liveness period; then the jobs run.
- Deposed (lease lost, a fenced write, a worker that has seen a newer term): the jobs stop
  acting, writes are refused, and the state is reloaded from the database.
- Following: reads are refreshed from the database every claim (about half a second), and
  writes are forwarded to the leader (manager/forward.py).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from common.config import Config
from manager.cluster import cluster_view
from manager.client import WorkerClient
from manager.forward import Forwarder
from manager.leader import Leadership
from manager.manager import Manager
from store.pglease import PostgresLease
from store.postgres import PostgresStore

log = logging.getLogger(__name__)

NOT_LEADING = -1  # a fence no lease row ever matches: a follower's writes always fail


class ClusterRole:
    """One manager's part in a cluster of managers sharing `store`."""

    def __init__(self, config: Config, store: PostgresStore, manager: Manager, client: WorkerClient,
                 address: str, reload: Callable[[], None]) -> None:
        """`reload` replaces every in-memory state (tasks, services) by the database's."""
        self.name = config.manager_name or address
        self.address = address
        self._store, self._manager, self._client, self._reload = store, manager, client, reload
        self._ready_term: int | None = None  # the term whose reload is done
        self._revision: tuple[int, int] | None = None  # the store's, at the last refresh
        self._announced: tuple[str, str, int] | None = None  # the leader last published on the event log
        self.leadership = Leadership(PostgresLease(store), self.name, address, config.lease_ttl,
                                     on_elected=self._elected, on_deposed=self._deposed, on_follow=self._refresh)
        store.fence = (self.name, NOT_LEADING)
        store.on_fenced = lambda exc: self.leadership.step_down(str(exc))
        client.on_stale_term = lambda seen: self.leadership.step_down(f"a worker has seen term {seen}")
        self.forwarder = Forwarder(self.leadership, self.name, read_timeout=config.request_timeout + 30)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self.leadership.run, args=(self._halt,), name="lease", daemon=True)

    @property
    def leading(self) -> bool:
        """True while this manager may act: leader, and its state reloaded for this term."""
        return self.leadership.is_leader and self._ready_term == self.leadership.term

    def gate(self, job: Callable[[], Any]) -> Callable[[], Any]:
        """`job`, made to do nothing unless this manager is leading."""
        def gated() -> Any:
            return job() if self.leading else None
        gated.__name__ = getattr(job, "__name__", "job")
        return gated

    def view(self) -> dict[str, Any]:
        """The body of GET /cluster."""
        return cluster_view(self.leadership, self.name, self.address)

    def start(self) -> None:
        """Claim once now (so a lone manager leads before it serves), then keep claiming."""
        self.leadership.tick()
        self._thread.start()

    def shutdown(self) -> None:
        """Resign (a follower takes over at once) and stop claiming. Idempotent."""
        self.leadership.resign()
        self._halt.set()
        self._thread.join(5.0)
        self.forwarder.close()

    # ----- callbacks of the claiming thread

    def _elected(self, term: int) -> None:
        self._store.fence = (self.name, term)
        self._client.term = term
        self._reload()
        self._revision = None
        self._ready_term = term
        self._announce((self.name, self.address, term))
        log.info("manager %s leads term %d with %d task(s)", self.name, term, len(self._manager.list()))

    def _deposed(self) -> None:
        self._ready_term = None
        self._store.fence = (self.name, NOT_LEADING)
        self._revision = None  # what the jobs did in memory meanwhile is replaced at the next refresh
        self._announce(None)

    def _announce(self, leader: tuple[str, str, int] | None) -> None:
        """Publish a change of leader as this manager sees it (GET /events, topic leader): kind
        "elected" with the leader's name, address and term, or "none" while there is none."""
        if leader == self._announced:
            return
        self._announced = leader
        name, address, term = leader or (None, None, None)
        self._manager.events.publish("leader", "elected" if leader else "none",
                                     {"name": name, "address": address, "term": term, "self": name == self.name})

    def _refresh(self) -> None:
        self._announce(self.leadership.leader())
        try:
            revision = self._store.revision()
            if revision != self._revision:
                self._reload()
                self._revision = revision
        except Exception as exc:  # noqa: BLE001 - the database is out of reach: reads stay as they were
            log.warning("refresh from the database failed: %s", exc)
