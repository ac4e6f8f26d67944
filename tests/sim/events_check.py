"""Invariant 7, on the manager's event log (GET /events): what a reader rebuilds from it is the
manager's own view.

After every step a reader reads the log up to its newest event and applies each task event
(which carries the task's state, attempt, node and desired state) to its copy; that copy must
equal the manager's tasks. Indices must grow by one, and within an attempt a task's events must
follow the transition table. A restarted manager has a new log: the reader starts over from
the manager's state, as a real reader that gets 410 does.
"""
from __future__ import annotations

from manager.events import EventLog
from task import TRANSITIONS, State
from tests.sim.invariants import InvariantViolation
from tests.sim.world import World


def fields(data: dict) -> tuple:
    return data["state"], data["attempt"], data["node"], data["desired_state"]


def snapshot(manager) -> dict[str, tuple]:
    """The manager's tasks as the view keeps them (read in place: manager.list() copies every
    task, too slow for every step; the simulation is single-threaded)."""
    return {t.id: (t.state.value, t.attempt, t.node, t.desired_state) for t in manager._tasks.values()}


class EventChecker:
    """Follows the current manager's event log like a GET /events client that never lags."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.log: EventLog | None = None
        self.position = 0
        self.view: dict[str, tuple] = {}
        self.replayed = 0  # events already reflected in the state the view started from
        self.events = 0

    def fail(self, message: str) -> None:
        raise InvariantViolation(f"invariant 7: {message}")

    def step(self) -> None:
        manager = self.world.manager
        if manager is None:
            return
        if manager.events is not self.log:  # a new manager process: start over from its state
            self.log, self.position, self.replayed = manager.events, 0, manager.events.last
            self.view = snapshot(manager)
        batch, position = self.log.since(self.position, limit=1_000_000)
        for event in batch:
            self.position += 1
            if event["index"] != self.position:
                self.fail(f"event index {event['index']} after {self.position - 1}")
            if event["topic"] == "task":
                self._apply(event)
        self.events += len(batch)
        if position != self.position:
            self.fail(f"read up to {position}, counted {self.position}")
        actual = snapshot(manager)
        if actual != self.view:
            wrong = sorted(set(actual.items()) ^ set(self.view.items()))[:4]
            self.fail(f"the events say otherwise than the manager: {wrong}")

    def _apply(self, event: dict) -> None:
        data = event["data"]
        if event["kind"] == "removed":
            self.view.pop(data["id"], None)
            return
        before = self.view.get(data["id"])
        if event["index"] > self.replayed and before is not None and before[1] == data["attempt"] and before[0] != data["state"] \
                and State(data["state"]) not in TRANSITIONS[State(before[0])] and event["kind"] == "state":
            restored = data["previous"] == before[0]  # an undone change re-publishes the state restored
            if not restored:
                self.fail(f"task {data['id']} went {before[0]} -> {data['state']} in its events")
        self.view[data["id"]] = fields(data)
