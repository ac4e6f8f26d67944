"""Group commit, shared by the persistent stores (no database driver here).

Every change waiting at the moment a commit starts is written in one transaction, and its
writers are woken when it is durable. So each put() is durable when it returns, and N
concurrent requests cost one commit, not N.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterable

Encoded = tuple[str, str, str | None]  # (kind, key, JSON text or None for a delete)


class StoreClosed(RuntimeError):
    """A write arrived after close()."""


class _Batch:
    """Changes waiting for a commit, and how that commit went."""

    def __init__(self) -> None:
        self.items: list[Encoded] = []
        self.taken = False  # a writer is committing it
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """The write half of a store: submit/put/put_many/delete over `_write(items)`.

    Group commit without a committer thread (leader/follower): writers add their changes to
    the open batch; the first writer to wait while no commit runs takes the batch and commits
    it for everyone in it, the others wait for that commit. Handing work to a thread of its
    own would cost a GIL switch (up to 5 ms) per commit under load.

    Subclasses implement `_write(items)` (one transaction; raise to fail the whole batch) and
    `_close()`, and set `name` (used in messages).
    """

    name = "store"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._committing = False
        self._closed = False

    def _write(self, items: list[Encoded]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.put_many([(kind, key, value)])

    def delete(self, kind: str, key: str) -> None:
        self.put_many([(kind, key, None)])

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        """Write the changes and return once they are durable (see submit)."""
        self.submit(items)()

    def submit(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Callable[[], None]:
        """Queue the changes for the next group commit; return a function that waits for it.

        Changes submitted in order are committed in order, so a caller may submit while
        holding its own lock (cheap) and wait after releasing it (slow).

        Raises (here or from the wait function):
            StoreClosed: the store was closed. Anything `_write` raises: the commit failed.
        """
        encoded = [(k, key, None if v is None else json.dumps(v, separators=(",", ":"))) for k, key, v in items]
        with self._cond:
            if self._closed:
                raise StoreClosed(f"store {self.name} is closed")
            batch = self._batch
            batch.items.extend(encoded)
        return lambda: self._await(batch)

    def _await(self, batch: _Batch) -> None:
        with self._cond:
            while not batch.done and not self._lead(batch):
                self._cond.wait()
        if batch.error is not None:
            raise batch.error

    def _lead(self, batch: _Batch) -> bool:
        """Commit `batch` if no commit is running and nobody took it (caller holds _cond).

        An untaken batch is always the open one, so the committer closes it for new changes.
        """
        if self._committing or batch.taken:
            return False
        self._committing, batch.taken, self._batch = True, True, _Batch()
        self._cond.release()
        try:
            self._write(batch.items)
        except BaseException as exc:  # handed to every writer of the batch
            batch.error = exc
        finally:
            self._cond.acquire()
            self._committing, batch.done = False, True
            self._cond.notify_all()
        return True

    def close(self) -> None:
        """Commit what is queued, then close. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            batch = self._batch
        if batch.items:
            try:
                self._await(batch)
            except Exception:  # noqa: BLE001 - its writers see the error themselves
                pass
        with self._cond:
            self._cond.wait_for(lambda: not self._committing, 10)
        self._close()
