"""A SQLite store (standard library sqlite3): WAL, synchronous=FULL, group commit.

Writers from many threads hand their changes to one committer thread, which writes every
change waiting at that moment in one transaction and then wakes the writers. So each put()
is durable when it returns, and N concurrent requests cost one fsync, not N.
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
    """Changes waiting for the next commit, and the event their writers wait on."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict[str, Any] | None]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None


class SqliteStore:
    """Store protocol over one SQLite file."""

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
        self._closed = False
        self._committer = threading.Thread(target=self._commit_loop, name=f"sqlite-{path}", daemon=True)
        self._committer.start()

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
            self._cond.notify()

        def wait() -> None:
            batch.done.wait()
            if batch.error is not None:
                raise batch.error
        return wait

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._batch.items and not self._closed:
                    self._cond.wait()
                batch, self._batch = self._batch, _Batch()
                if not batch.items and self._closed:
                    batch.done.set()
                    return
            try:
                self._write(batch.items)
            except BaseException as exc:  # handed to the writers, who raise it
                batch.error = exc
            batch.done.set()

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
        """Commit what is queued, stop the committer and close the file. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._committer.join(10)
        with self._read_lock:
            self._db.close()
