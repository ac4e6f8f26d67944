"""A SQLite store (standard library sqlite3): WAL, synchronous=FULL, group commit
(store/group.py): each put() is on disk when it returns, and N concurrent requests cost one
fsync, not N.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

from store.group import GroupCommit, StoreClosed

__all__ = ["SqliteStore", "StoreClosed"]

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


class SqliteStore(GroupCommit):
    """Store protocol over one SQLite file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = self.name = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]
        self._read_lock = threading.Lock()

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

    def _close(self) -> None:
        with self._read_lock:
            self._db.close()
