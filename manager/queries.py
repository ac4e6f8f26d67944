"""The manager's reads for request paths: pages of tasks and nodes by cursor, filtered, and
the number of tasks per state. None of them walks or copies every task under the lock: they
read the indexes (manager.index) and copy one page.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from manager.index import Page, UnknownCursor
from node import DOWN, UP
from task import State, ValidationError

if TYPE_CHECKING:
    from manager.manager import Manager

DEFAULT_LIMIT = 1000  # tasks or nodes per page when the request names no limit
MAX_LIMIT = 10000  # the largest page a request may ask for
MAX_FILTER = 256  # characters of a filter value or cursor
STATES = tuple(s.value for s in State)
NODE_STATES = (UP, DOWN)


class Queries:
    """Mixin of Manager: query_tasks(), query_nodes(), task_counts()."""

    def query_tasks(self: "Manager", state: str | None = None, node: str | None = None,
                    service: str | None = None, after: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
        """A page of copies of the tasks matching every filter given, oldest first.

        Args:
            state: a state's value (`running`, ...). node: a node's name. service: a service's name.
            after: the cursor of the previous page (Page.next): the id of its last task.
            limit: tasks per page, 1..MAX_LIMIT.
        Raises:
            ValidationError: a bad filter, limit or cursor, naming it.
        """
        _check_limit(limit)
        filters = {name: _text(name, value) for name, value in (("state", state), ("node", node),
                                                                ("service", service)) if value is not None}
        if "state" in filters and filters["state"] not in STATES:
            raise ValidationError(f"query parameter state must be one of {', '.join(STATES)}")
        after = _text("after", after) if after is not None else None
        with self._lock:
            try:
                ids, cursor = self._index.page(filters, after, limit)
            except UnknownCursor:
                raise ValidationError("query parameter after must be the id of a task the manager holds "
                                      "(the cursor of the previous page)") from None
            return Page([copy.copy(self._tasks[i]) for i in ids], cursor)

    def query_nodes(self: "Manager", state: str | None = None, after: str | None = None,
                    limit: int = DEFAULT_LIMIT) -> Page:
        """A page of copies of the nodes (in configuration order), `state` up or down.

        Raises:
            ValidationError: a bad filter, limit or cursor, naming it.
        """
        _check_limit(limit)
        if state is not None and state not in NODE_STATES:
            raise ValidationError(f"query parameter state must be one of {', '.join(NODE_STATES)}")
        with self._lock:
            nodes = self._nodes
            start = 0
            if after is not None:
                place = next((n for n, node in enumerate(nodes) if node.name == after), None)
                if place is None:
                    raise ValidationError("query parameter after must be the name of a node "
                                          "(the cursor of the previous page)")
                start = place + 1
            chosen = []
            for node in nodes[start:]:
                if state is None or node.state == state:
                    chosen.append(node)
                    if len(chosen) > limit:
                        break
            more = len(chosen) > limit
            chosen = chosen[:limit]
            return Page([copy.copy(n) for n in chosen], chosen[-1].name if more and chosen else None)

    def task_counts(self: "Manager") -> dict[str, int]:
        """Tasks per state value, every state included (kept up to date as tasks change)."""
        with self._lock:
            return {state: self._index.counts.get(state, 0) for state in STATES}


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"query parameter limit must be an integer between 1 and {MAX_LIMIT}")


def _text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_FILTER:
        raise ValidationError(f"query parameter {name} must be a non-empty string of at most {MAX_FILTER} characters")
    return value
