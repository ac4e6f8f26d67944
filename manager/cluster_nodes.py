"""The seed API's nodes: POST /clusters/0/nodes registers a node (starting a worker process
for it with `spawn`), DELETE /clusters/0/nodes drains it, then removes it and stops the
worker if the manager spawned it. Registration, drains and removal are the node registry's
(manager/nodes/); this module only sequences them."""
from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from manager.spawner import Spawner
from node.validation import DrainRequest, parse_registration
from service.seed import SeedJoin
from task import Conflict, NotFound, ValidationError

log = logging.getLogger(__name__)

LEAVING = "leaving_node"  # the store's kind of the leaves in progress
DRAIN_DEADLINE = 300.0  # seconds a leaving node's tasks get to move before they are moved at once


class ClusterNodes:
    """Joins and leaves of the seed API over a Manager's node registry."""

    def __init__(self, manager, spawner: Spawner | None = None, drain_deadline: float = DRAIN_DEADLINE) -> None:
        self._manager = manager
        self._store = manager.store
        self._spawner = spawner
        self._deadline = drain_deadline
        self._lock = threading.Lock()
        # nodes being drained to be removed; stored, so a restarted manager still removes them
        self._leaving: set[str] = {record["name"] for record in self._store.list(LEAVING)}

    def join(self, request: SeedJoin) -> tuple[dict[str, Any], bool]:
        """Register the node, after starting its worker when asked; returns (node, created).

        Raises:
            ValidationError: spawn asked on a manager that cannot spawn, or a bad capacity.
            Conflict: the worker could not be started, or the name is taken elsewhere.
        """
        body = {"name": request.name, "address": f"{request.host}:{request.port}", "capacity": request.capacity,
                "labels": request.labels or {}}
        registration = parse_registration(body)
        pid = None
        if request.spawn:
            if self._spawner is None:
                raise ValidationError("spawn is not available on this manager")
            pid = self._spawner.start(request.name, request.host, request.port)
        try:
            node, created = self._manager.register(registration)
        except Exception:
            if pid is not None:
                self._spawner.stop(request.name)
            raise
        self._forget(node.name)
        return {**node.to_dict(), "spawned": pid is not None or self._spawned(node.name), "pid": pid}, created

    def leave(self, host: str, port: int) -> dict[str, Any]:
        """Start draining the node at host:port; it is removed (and its spawned worker
        stopped) once drained, by settle_leaves(). Raises NotFound."""
        address = f"{host}:{port}"
        node = next((n for n in self._manager.nodes() if n.address == address), None)
        if node is None:
            raise NotFound(f"no node at {address}")
        self._store.put(LEAVING, node.name, {"name": node.name})
        with self._lock:
            self._leaving.add(node.name)
        if node.drain is None:
            node = self._manager.drain(node.name, DrainRequest(deadline=self._deadline))
        log.info("node %s leaves the cluster: draining, then removed", node.name)
        return {**copy.copy(node).to_dict(), "leaving": True, "spawned": self._spawned(node.name)}

    def settle_leaves(self) -> None:
        """Remove the leaving nodes whose drain is done; stop the workers spawned for them.
        Each node in its own try (a periodic job)."""
        with self._lock:
            names = sorted(self._leaving)
        for name in names:
            try:
                self._settle(name)
            except Exception:
                log.exception("node %s: removal failed; it will be tried again", name)

    def _settle(self, name: str) -> None:
        if self._manager.has_node(name):
            node = self._manager.node(name)
            if node.drain is not None:
                return
            try:
                self._manager.remove_node(name)
            except Conflict as exc:
                log.info("node %s: not removable yet: %s", name, exc)
                return
        if self._spawner is not None:
            self._spawner.stop(name)
        self._forget(name)

    def _forget(self, name: str) -> None:
        with self._lock:
            if name not in self._leaving:
                return
            self._leaving.discard(name)
        self._store.delete(LEAVING, name)

    def shutdown(self) -> None:
        """Stop the workers this manager spawned."""
        if self._spawner is not None:
            self._spawner.shutdown()

    def _spawned(self, name: str) -> bool:
        return self._spawner is not None and self._spawner.spawned(name)
