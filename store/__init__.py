"""Durable key-value stores for the manager: a protocol, a memory store and a SQLite store."""
from store.base import BadDatabaseURL, Store, open_store
from store.memory import MemoryStore
from store.sqlite import SqliteStore

__all__ = ["BadDatabaseURL", "Store", "MemoryStore", "SqliteStore", "open_store"]
