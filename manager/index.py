"""The manager's indexes over its tasks: intake order, by state, by node and by service, with
the number of tasks per state; and pages of them by cursor.

Kept up to date as tasks change (Manager._save feeds every written task through update()),
so a listing, a filtered listing or a /metrics scrape never walks every task. Plain
bookkeeping: the caller holds the manager's lock.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from task import State, Task

FIELDS = ("state", "node", "service")


def service_of(task: Task) -> str | None:
    """The service a task belongs to (None for a task submitted on its own)."""
    return getattr(task, "service", None)


@dataclass(frozen=True)
class Page:
    """A page of a listing: the items, and the cursor of the next page (None on the last)."""

    items: list[Any]
    next: str | None


class UnknownCursor(KeyError):
    """`after` names no task the manager holds (never did, or purged since)."""


class TaskIndex:
    """Task ids in intake order, and sets of them by state, node and service."""

    def __init__(self) -> None:
        self._order: list[str | None] = []  # ids in intake order; None where one was removed
        self._pos: dict[str, int] = {}  # id -> its place in _order
        self._keys: dict[str, tuple[str, str | None, str | None]] = {}  # id -> (state, node, service)
        self._by: dict[str, dict[str | None, set[str]]] = {name: {} for name in FIELDS}
        self._holes = 0
        self.counts: Counter[str] = Counter()  # tasks per state value

    def __len__(self) -> int:
        return len(self._pos)

    def update(self, task: Task) -> None:
        """Index a new task, or move a known one to the sets its fields now call for."""
        key = (task.state.value, task.node, service_of(task))
        old = self._keys.get(task.id)
        if old == key:
            return
        if old is None:
            self._pos[task.id] = len(self._order)
            self._order.append(task.id)
        else:
            self._unlink(task.id, old)
        self._keys[task.id] = key
        for name, value in zip(FIELDS, key):
            self._by[name].setdefault(value, set()).add(task.id)
        self.counts[key[0]] += 1

    def remove(self, task_id: str) -> None:
        """Forget a task (purged, or its intake undone)."""
        old = self._keys.pop(task_id, None)
        if old is None:
            return
        self._unlink(task_id, old)
        self._order[self._pos.pop(task_id)] = None
        self._holes += 1
        if self._holes > 1024 and self._holes * 2 > len(self._order):
            self._compact()

    def _unlink(self, task_id: str, key: tuple[str, str | None, str | None]) -> None:
        for name, value in zip(FIELDS, key):
            members = self._by[name].get(value)
            if members is not None:
                members.discard(task_id)
                if not members:
                    del self._by[name][value]
        self.counts[key[0]] -= 1

    def _compact(self) -> None:
        self._order = [i for i in self._order if i is not None]
        self._pos = {task_id: n for n, task_id in enumerate(self._order)}
        self._holes = 0

    def count(self, state: State) -> int:
        """Tasks in `state`."""
        return self.counts.get(state.value, 0)

    def page(self, filters: dict[str, str], after: str | None, limit: int) -> tuple[list[str], str | None]:
        """Up to `limit` ids matching every filter (field -> value), in intake order, after the
        task `after`; and the cursor of the next page (the last id given, or None if no more
        match).

        Raises:
            UnknownCursor: `after` names no task held here.
        """
        if after is not None and after not in self._pos:
            raise UnknownCursor(after)
        start = self._pos[after] + 1 if after is not None else 0
        sets = [self._by[name].get(value, set()) for name, value in filters.items()]
        ids = self._matching(sets, start, limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        return ids, (ids[-1] if more and ids else None)

    def _matching(self, sets: list[set[str]], start: int, wanted: int) -> list[str]:
        """The first `wanted` ids from position `start` on that are in every set.

        Walks the intake order when matches are dense enough to be met soon, else sorts the
        smallest set's members by position: either way about min(|set|, wanted * N / |set|)
        steps, never all tasks for a small filter."""
        if not sets:
            return self._walk(start, wanted, lambda task_id: True)
        sets = sorted(sets, key=len)
        smallest, others = sets[0], sets[1:]

        def member(task_id: str) -> bool:
            return task_id in smallest and all(task_id in s for s in others)
        if len(smallest) ** 2 > wanted * max(1, len(self._order)):
            return self._walk(start, wanted, member)
        pos = self._pos
        places = sorted(p for task_id in smallest if (p := pos[task_id]) >= start
                        and all(task_id in s for s in others))
        return [self._order[p] for p in places[:wanted]]  # type: ignore[misc]

    def _walk(self, start: int, wanted: int, keep: Callable[[str], bool]) -> list[str]:
        found: list[str] = []
        order = self._order
        for n in range(start, len(order)):
            task_id = order[n]
            if task_id is not None and keep(task_id):
                found.append(task_id)
                if len(found) >= wanted:
                    break
        return found

    def ids_on(self, node: str) -> set[str]:
        """A copy of the ids of the tasks whose current attempt is on `node`."""
        return set(self._by["node"].get(node, ()))

    def unfinished(self) -> list[str]:
        """The ids of the tasks not in a terminal state (pending, scheduled, running), in
        intake order (so that passes over them are deterministic)."""
        states = self._by["state"]
        ids = [i for s in State if not s.is_terminal for i in states.get(s.value, ())]
        return sorted(ids, key=self._pos.__getitem__)

    def finished_ids(self) -> list[str]:
        """The ids of the tasks in a terminal state (completed, failed), in no set order."""
        states = self._by["state"]
        return [i for s in State if s.is_terminal for i in states.get(s.value, ())]

    def rebuild(self, tasks: Iterable[Task]) -> None:
        """Index `tasks` (in intake order) from scratch."""
        self.__init__()  # type: ignore[misc]
        for task in tasks:
            self.update(task)
