"""The manager's event log: a bounded ring of what changed, read by GET /events and the dashboard.

The API (small and stable: other parts of the manager publish through it):

    events = EventLog(capacity=10_000)
    index = events.publish(topic, kind, data)  # -> the new event's index
    batch, position = events.since(index, topics=None, limit=500)  # raises EventsGone
    events.wait(index, timeout)  # -> True once an event newer than `index` exists
    events.last, events.oldest   # newest index (0: none yet), oldest index still kept
    events.close()               # wake every waiter for good (shutdown)

- `topic` is one of TOPICS: "task", "node", "service", "leader". `kind` says what happened
  within the topic (a short word: task "created" / "state" / "updated" / "removed"; node
  "up" / "down"; others add theirs and list them in README). `data` is a JSON-able dict,
  copied at publish time: the caller may change its own dict afterwards.
- Each event is a dict {"index", "topic", "kind", "time" (ISO 8601 UTC), "data"}. Indices
  start at 1 and grow by one per event, across topics, for the life of the process.
- `since(index)` returns events with an index greater than `index`, oldest first, at most
  `limit` of them, and the position to read from next (the last index it looked at, so a
  topic filter that skipped events still moves on). When events after `index` have already
  been dropped from the ring (or `index` is ahead of this log: another process, or one that
  restarted), it raises EventsGone carrying the oldest index kept: a reader cannot resume
  without a gap and must start over from the state (GET /tasks, /nodes) and `oldest`.
- publish() never blocks on readers and takes microseconds; call it from any thread, with or
  without the caller's own lock held (the manager publishes under its lock, which keeps the
  events of one task in the order the changes were made).
- Readers that stream (SSE) call wait() between reads instead of polling; wait() returns
  early when close() is called.
"""
from __future__ import annotations

import copy
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

TOPICS = ("task", "node", "service", "leader")
CAPACITY = 10_000
READ_LIMIT = 500


class EventsGone(Exception):
    """The events after the asked index are no longer kept (or never were, by this log).

    Attributes:
        index: the index asked for. oldest: the oldest index kept (last + 1 when empty).
        last: the newest index.
    """

    def __init__(self, index: int, oldest: int, last: int) -> None:
        if index > last:
            reason = f"index {index} is ahead of this manager's newest event ({last}): it restarted"
        else:
            reason = f"events after {index} are gone; the oldest kept is {oldest}"
        super().__init__(reason)
        self.index, self.oldest, self.last = index, oldest, last


def utc_time() -> str:
    """Now as ISO 8601 UTC with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_topics(topics: Iterable[str]) -> tuple[str, ...]:
    """Return the topics as a tuple; raise ValueError naming one that is not in TOPICS."""
    chosen = tuple(dict.fromkeys(topics))
    for topic in chosen:
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic[:32]!r}; one of {', '.join(TOPICS)}")
    return chosen


class EventLog:
    """A thread-safe ring of the last `capacity` events with growing indices."""

    def __init__(self, capacity: int = CAPACITY, clock: Callable[[], str] = utc_time) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ring: list[dict[str, Any] | None] = [None] * capacity
        self._last = 0
        self._closed = False
        self._clock = clock
        self._changed = threading.Condition()

    @property
    def last(self) -> int:
        """The newest event's index (0 before the first event)."""
        return self._last

    @property
    def oldest(self) -> int:
        """The oldest index kept (last + 1 while the log is empty)."""
        with self._changed:
            return self._oldest()

    @property
    def capacity(self) -> int:
        return self._capacity

    def publish(self, topic: str, kind: str, data: dict[str, Any]) -> int:
        """Append an event; wake the waiting readers; return its index.

        Raises:
            ValueError: `topic` is not one of TOPICS.
        """
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        event = {"index": 0, "topic": topic, "kind": kind, "time": self._clock(), "data": _copy(data)}
        with self._changed:
            self._last += 1
            event["index"] = self._last
            self._ring[self._last % self._capacity] = event
            self._changed.notify_all()
            return self._last

    def since(self, index: int, topics: Iterable[str] = (), limit: int = READ_LIMIT) -> tuple[list[dict[str, Any]], int]:
        """Events after `index` (of `topics`, all when empty), oldest first, at most `limit`.

        Returns (events, position): read on from `position` (the last index looked at).
        Raises:
            EventsGone: events after `index` were dropped, or `index` is ahead of this log.
        """
        wanted = frozenset(topics)
        with self._changed:
            oldest = self._oldest()
            if index > self._last or index < oldest - 1:
                raise EventsGone(index, oldest, self._last)
            found: list[dict[str, Any]] = []
            position = index
            while position < self._last and len(found) < limit:
                position += 1
                event = self._ring[position % self._capacity]
                if event is not None and (not wanted or event["topic"] in wanted):
                    found.append(event)
            return found, position

    def wait(self, index: int, timeout: float) -> bool:
        """Block until an event newer than `index` exists, `timeout` passes or the log is
        closed; return whether there is a newer event."""
        with self._changed:
            self._changed.wait_for(lambda: self._last > index or self._closed, timeout)
            return self._last > index

    def close(self) -> None:
        """Release every waiter now and from now on (shutdown). Idempotent."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _oldest(self) -> int:
        return max(1, self._last - self._capacity + 1) if self._last else 1


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` that shares nothing mutable with it (deepcopy only where a value is a
    container: most events are flat, and publish runs under the manager's lock)."""
    return {key: copy.deepcopy(value) if isinstance(value, (dict, list, set)) else value
            for key, value in data.items()}
