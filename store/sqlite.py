"""A SQLite store (standard library sqlite3): WAL, synchronous=FULL, group commit.

Every change waiting at the moment a commit starts is written in one transaction, and its
writers are woken when it is on disk. So each put() is durable when it returns, and N
concurrent requests cost one fsync, not N.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Callable, Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)
"""
_UPSERT = ("INSERT INTO items (kind, key, seq, value) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value")


class StoreClosed(RuntimeError):
    """A write arrived after close()."""


class _Batch:
    """Changes waiting for a commit, and how that commit went."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str | None]] = []
        self.taken = False  # a leader is committing it
        self.done = False
        self.error: BaseException | None = None


class SqliteStore:
    """Store protocol over one SQLite file.

    Group commit without a committer thread (leader/follower): writers add their changes to
    the open batch; the first writer to wait while no commit runs takes the batch and commits
    it for everyone in it, the others wait for that commit. Handing work to a thread of its
    own would cost a GIL switch (up to 5 ms) per commit under load.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._committing = False
        self._closed = False

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.put_many([(kind, key, value)])

    def delete(self, kind: str, key: str) -> None:
        self.put_many([(kind, key, None)])

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        """Write the changes and return once they are on disk (see submit)."""
        self.submit(items)()

    def submit(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Callable[[], None]:
        """Queue the changes for the next group commit; return a function that waits for it.

        Changes submitted in order are committed in order, so a caller may submit while
        holding its own lock (cheap) and wait after releasing it (slow).

        Raises (here or from the wait function):
            StoreClosed: the store was closed. sqlite3.Error: the commit failed.
        """
        encoded = [(k, key, None if v is None else json.dumps(v, separators=(",", ":"))) for k, key, v in items]
        with self._cond:
            if self._closed:
                raise StoreClosed(f"store {self.path} is closed")
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

        An untaken batch is always the open one, so the leader closes it for new changes.
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

    def _write(self, items: list) -> None:
        with self._read_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, key, value in items:
                    if value is None:
                        self._db.execute("DELETE FROM items WHERE kind = ? AND key = ?", (kind, key))
                    else:
                        self._seq += 1
                        self._db.execute(_UPSERT, (kind, key, self._seq, value))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._read_lock:
            row = self._db.execute("SELECT value FROM items WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._read_lock:
            rows = self._db.execute("SELECT value FROM items WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self, kind: str) -> int:
        with self._read_lock:
            return self._db.execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0]

    def close(self) -> None:
        """Commit what is queued, then close the file. Idempotent."""
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
        with self._read_lock:
            self._db.close()
