"""The store protocol: JSON values by (kind, key), written durably before put() returns."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Protocol


class BadDatabaseURL(ValueError):
    """ORCA_DATABASE_URL cannot be parsed or reached at start; the message names it, without
    the password."""


class Store(Protocol):
    """A map of JSON-able dicts grouped by kind ("task", "event", ...).

    put/put_many/delete return only once the change is durable (for a persistent store);
    submit queues changes in order and returns a function that waits until they are.
    list() returns values in the order their keys were first written.
    """

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None: ...
    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None: ...
    def submit(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Callable[[], None]: ...
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...
    def list(self, kind: str) -> list[dict[str, Any]]: ...
    def count(self, kind: str) -> int: ...
    def delete(self, kind: str, key: str) -> None: ...
    def close(self) -> None: ...


def open_store(kind: str, data_dir: str, name: str, database_url: str = "", hold_limit: float = 5.0) -> Store:
    """Open the store: PostgreSQL at `database_url` when given (ORCA_DATABASE_URL), else the
    one ORCA_STORE names: 'memory', or 'sqlite' in `<data_dir>/<name>.db`.

    Raises:
        BadDatabaseURL: the URL is malformed or its server unreachable.
    """
    from store.memory import MemoryStore
    from store.sqlite import SqliteStore

    if database_url:
        from store.postgres import PostgresStore  # the driver is loaded only when used

        return PostgresStore(database_url, hold_limit=hold_limit)

    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return SqliteStore(str(path / f"{name}.db"))
    raise ValueError(f"unknown store {kind!r}; choose sqlite or memory")
