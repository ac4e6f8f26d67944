"""A store that keeps everything in memory: for tests and demos; nothing survives a restart."""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Iterable


def _done() -> None:
    return None


class MemoryStore:
    """Store protocol over dicts (insertion-ordered), behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {}

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.put_many([(kind, key, value)])

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        self.submit(items)()

    def submit(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Callable[[], None]:
        """Apply the changes now; the returned wait function has nothing to wait for."""
        with self._lock:
            for kind, key, value in items:
                bucket = self._data.setdefault(kind, {})
                if value is None:
                    bucket.pop(key, None)
                else:
                    bucket[key] = copy.deepcopy(value)
        return _done

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._data.get(kind, {}).get(key)
            return copy.deepcopy(value) if value is not None else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(v) for v in self._data.get(kind, {}).values()]

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self._data.get(kind, {}))

    def delete(self, kind: str, key: str) -> None:
        self.put_many([(kind, key, None)])

    def close(self) -> None:
        pass
