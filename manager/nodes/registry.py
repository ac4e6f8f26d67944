"""The node registry: workers that join (POST /nodes), leave (DELETE), and the operator's
eligibility. Nodes are persisted (kind "node") so a manager restart keeps them, their
eligibility and drains; a removed node leaves a tombstone so a fixed ORCA_WORKERS entry
does not come back either. Liveness (up/down) is still judged only by manager.liveness.
"""
from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from node import Node
from node.validation import Registration
from task import Conflict, NotFound, Unavailable, WorkerRejected, WorkerUnavailable
from task.lifecycle import ACTIVE

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

PERSISTED = ("id", "name", "address", "eligible", "capacity", "labels")


class NodeRegistry:
    """Mixin of Manager: register/remove nodes, eligibility, lookups."""

    def _init_registry(self: "Manager", workers: list[str]) -> None:
        """Build the node list: the persisted nodes (in the order they joined), then the
        ORCA_WORKERS addresses not known yet and not removed."""
        self.on_node_added: Callable[[str], None] = lambda name: None  # start following it (the service)
        self._node_records: dict[str, dict[str, Any]] = {r["name"]: r for r in self._store.list("node")}
        self._nodes = []
        self._by_name = {}
        for record in self._node_records.values():
            if not record.get("removed"):
                self._add_node(_node_from(record, self._clock()))
        for address in workers:
            if address not in self._by_name and not self._node_records.get(address, {}).get("removed"):
                self._add_node(Node(name=address, address=address, last_answer=self._clock()))

    def _reload_nodes(self: "Manager") -> list[str]:
        """Take the store's nodes (another manager may have changed them): add the new ones,
        drop the removed ones, take eligibility, address, capacity and labels, and resume the
        drains recorded. Caller holds the lock. Returns the names of the nodes added."""
        self._node_records = {r["name"]: r for r in self._store.list("node")}
        added = []
        for name, record in self._node_records.items():
            node = self._by_name.get(name)
            if record.get("removed"):
                if node is not None:
                    self._nodes.remove(node)
                    del self._by_name[name]
                continue
            fresh = _node_from(record, self._clock())
            if node is None:
                self._add_node(fresh)
                added.append(name)
                continue
            node.address, node.id, node.eligible, node.labels = fresh.address, fresh.id, fresh.eligible, fresh.labels
            if any(fresh.capacity.values()):
                node.capacity = fresh.capacity
        self._drains.clear()
        for node in self._nodes:
            node.drain = None
        self._restore_drains(self._node_records)
        return added

    def _add_node(self: "Manager", node: Node) -> None:
        self._nodes.append(node)
        self._by_name[node.name] = node
        if hasattr(self, "_sync_locks"):
            self._sync_locks[node.name] = threading.Lock()

    def _node_record(self: "Manager", node: Node) -> tuple[str, str, dict[str, Any]]:
        record = {name: copy.deepcopy(getattr(node, name)) for name in PERSISTED}
        record["drain"] = self._drain_record(node.name)
        return ("node", node.name, record)

    def _save_node(self: "Manager", node: Node) -> Callable[[], None]:
        """Queue the node's record (caller holds the lock); return the wait."""
        return self._store.submit([self._node_record(node)])

    def _durable(self: "Manager", wait: Callable[[], None], what: str,
                 undo: Callable[[], None] | None = None) -> None:
        """Wait for a node write; if it fails, run `undo` under the lock (the change made in
        memory before the write is taken back) and raise Unavailable."""
        try:
            wait()
        except Exception as exc:
            if undo is not None:
                with self._lock:
                    undo()
            raise Unavailable(f"{what} could not be recorded: {exc}") from None

    # ----- requests

    def node(self: "Manager", name: str) -> Node:
        """A copy of one node; raises NotFound."""
        with self._lock:
            return copy.copy(self._node(name))

    def has_node(self: "Manager", name: str) -> bool:
        """True while `name` is registered (a watcher stops following a removed node)."""
        with self._lock:
            return name in self._by_name

    def register(self: "Manager", reg: Registration) -> tuple[Node, bool]:
        """Add a node, or take a known one's new address, capacity and labels (a worker that
        restarted). Durable when it returns. Returns (a copy, whether it is new).

        Raises:
            Conflict: the name is taken by a node at another address that is up.
            Unavailable: shutting down, or the store could not record it.
        """
        self._check_accepting()
        with self._lock:
            node = self._by_name.get(reg.name)
            created = node is None
            before = copy.copy(node)
            if node is None:
                node = Node(name=reg.name, address=reg.address, last_answer=self._clock())
                self._add_node(node)
            elif node.address != reg.address and node.is_up:
                raise Conflict(f"node {reg.name} is already registered at {node.address} and up; "
                               f"give this worker another ORCA_WORKER_NAME")
            node.address, node.labels = reg.address, dict(reg.labels)
            node.id = reg.id or node.id
            if reg.capacity is not None:
                node.capacity = dict(reg.capacity)
            wait = self._save_node(node)
            result = copy.copy(node)

        def undo() -> None:
            if before is not None:
                node.__dict__.update(before.__dict__)
            elif self._by_name.get(reg.name) is node:
                self._nodes.remove(node)
                del self._by_name[reg.name]
                self._sync_locks.pop(reg.name, None)
        self._durable(wait, f"node {reg.name}", undo)
        log.info("node %s %s at %s", reg.name, "joined" if created else "rejoined", reg.address)
        self._publish("node", "join", result)
        if created:
            self.on_node_added(reg.name)
        self.on_work()
        return result, created

    def set_eligibility(self: "Manager", name: str, eligible: bool) -> Node:
        """Let a node take new tasks or not; its running tasks stay. Durable when it returns.

        Raises:
            NotFound: unknown node. Conflict: making a draining node eligible (cancel the drain).
        """
        self._check_accepting()
        with self._lock:
            node = self._node(name)
            if eligible and name in self._drains:
                raise Conflict(f"node {name} is draining: cancel the drain ({{\"cancel\": true}}) to make it eligible")
            before = node.eligible
            changed, node.eligible = node.eligible != eligible, eligible
            wait = self._save_node(node)
            result = copy.copy(node)
        self._durable(wait, f"node {name}", lambda: setattr(node, "eligible", before))
        if changed:
            log.info("node %s is %s", name, "eligible" if eligible else "ineligible")
            self._publish("node", "eligibility", result)
            self.on_work()
        return result

    def remove_node(self: "Manager", name: str) -> Node:
        """Forget a node that is down or drained; stop what is left of ours on it if it answers.

        Raises:
            NotFound: unknown node. Conflict: it is up and not drained, still draining, or
                tasks are still placed there (naming which).
        """
        self._check_accepting()
        with self._lock:
            node = self._node(name)
            self._check_removable(node)
            wait = self._store.submit([("node", name, {"name": name, "removed": True})])
        self._durable(wait, f"removal of node {name}")  # memory changes only once it is durable
        with self._lock:
            if self._by_name.get(name) is node:
                self._nodes.remove(node)
                del self._by_name[name]
            self._sync_locks.pop(name, None)
            self._forget_node(name)
            self._deferred.pop(name, None)
        log.info("node %s removed", name)
        self._publish("node", "leave", node)
        if node.is_up:
            self._stop_leftovers(node)
        return copy.copy(node)

    def _check_removable(self: "Manager", node: Node) -> None:
        placed = len(self._placed.get(node.name, {}))
        if node.name in self._drains:
            raise Conflict(f"node {node.name} is still draining ({placed} task(s) left)")
        if placed:
            raise Conflict(f"node {node.name} still has {placed} task(s) placed on it: drain it first")
        if node.is_up and node.eligible:
            raise Conflict(f"node {node.name} is up and not drained: drain it first (POST /nodes/{node.name}/drain)")

    def _stop_leftovers(self: "Manager", node: Node) -> None:
        """Stop every copy of our tasks the removed worker still runs (best effort)."""
        try:
            _, _, reports = self._client.changes(node.address, 0)
            for data in reports:
                if data.get("state") in {s.value for s in ACTIVE} and data.get("id"):
                    self._client.stop_task(node.address, data["id"], data.get("attempt"))
        except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
            log.warning("node %s removed; its containers could not be stopped: %s", node.name, exc)

    def _node(self: "Manager", name: str) -> Node:
        node = self._by_name.get(name)
        if node is None:
            raise NotFound(f"node {name[:255]} not found")
        return node

    def _publish(self: "Manager", topic: str, kind: str, node: Node) -> None:
        """Tell the event log (manager.events, when present) about a node change."""
        publish = getattr(self, "publish_event", None)
        if publish is not None:
            try:
                publish(topic, kind, {"name": node.name, "status": node.state, "eligible": node.eligible,
                                      "drain": node.drain})
            except Exception:  # noqa: BLE001 - the event log must never break a node change
                log.exception("node %s: event %s not published", node.name, kind)


def _node_from(record: dict[str, Any], now: float) -> Node:
    node = Node(name=record["name"], address=record["address"], last_answer=now)
    node.id = record.get("id") or node.id
    node.eligible = bool(record.get("eligible", True))
    node.capacity = dict(record.get("capacity") or node.capacity)
    node.labels = dict(record.get("labels") or {})
    return node
