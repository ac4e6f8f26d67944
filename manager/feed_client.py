"""The workers' change feeds over asyncio: the other half of the manager's HTTP client to
workers (manager.client holds the blocking calls), for following many workers at once."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from manager.client import INSTANCE_HEADER, VERSION_HEADER
from task import NotFound, WorkerRejected, WorkerUnavailable, WorkerUnreachable
from task.wire import TERM_HEADER


class AsyncChanges:
    """The change feed of many workers from one asyncio thread: GET /tasks?since=N&wait=S over
    one keep-alive connection per worker (HTTP/1.1, as WorkerClient.changes, on asyncio
    streams), so following 1,000 workers with long polls costs one thread, not 1,000.

    Raises (changes): as WorkerClient.changes.
    """

    def __init__(self, connect_timeout: float = 1.0, read_timeout: float = 5.0, token: str = "",
                 term: Callable[[], int | None] = lambda: None) -> None:
        self._term = term  # the leader's term, sent like WorkerClient sends it (several managers)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._token = token
        self._connections: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]:
        """(the worker's instance id, its version, the tasks it changed after `since`)."""
        path = f"/tasks?since={since}&wait={wait:g}" if wait else f"/tasks?since={since}"
        status, headers, body = await self._get(address, path, wait + self._read_timeout)
        if status >= 400:
            message = _body_error(body, status)
            if status >= 500:
                raise WorkerUnavailable(f"worker {address} answered {status}: {message}")
            raise NotFound(message) if status == 404 else WorkerRejected(message)
        try:
            version = int(headers.get(VERSION_HEADER.lower(), "0"))
            tasks = json.loads(body)
        except ValueError:
            raise WorkerUnavailable(f"worker {address} answered something that is not JSON") from None
        if not isinstance(tasks, list):
            raise WorkerUnavailable(f"worker {address} answered something that is not a list of tasks")
        return headers.get(INSTANCE_HEADER.lower(), ""), version, tasks

    async def _get(self, address: str, path: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
        """One GET on the worker's connection (opened if needed; a kept-alive connection the
        worker has closed meanwhile is replaced once)."""
        for fresh in ((False, True) if address in self._connections else (True,)):
            try:
                reader, writer = await self._connection(address)
                return await asyncio.wait_for(self._exchange(address, path, reader, writer), timeout)
            except asyncio.TimeoutError:
                # No answer in time: never asked again at once (a frozen worker would hold a
                # second read, sent late, in its socket).
                self.drop(address)
                raise WorkerUnreachable(f"worker {address} unreachable: no answer within {timeout:g} s") from None
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                self.drop(address)  # a kept-alive connection the worker closed: once more on a new one
                if fresh:
                    raise WorkerUnreachable(f"worker {address} unreachable: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    async def _connection(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if address not in self._connections:
            host, _, port = address.rpartition(":")
            self._connections[address] = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port), limit=1 << 24), self._connect_timeout)
        return self._connections[address]

    async def _exchange(self, address: str, path: str, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> tuple[int, dict[str, str], bytes]:
        auth = f"Authorization: Bearer {self._token}\r\n" if self._token else ""
        term = self._term()
        if term is not None:
            auth += f"{TERM_HEADER}: {term}\r\n"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Accept: application/json\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.drop(address)
        return status, headers, body

    def drop(self, address: str) -> None:
        """Close the connection to a worker (the next call opens a new one)."""
        connection = self._connections.pop(address, None)
        if connection is not None:
            connection[1].close()

    def close(self) -> None:
        """Close every connection (call from the loop's thread, or after the loop ended)."""
        for address in list(self._connections):
            self.drop(address)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _body_error(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body).get("error"))[:500]
    except (ValueError, AttributeError):
        return f"HTTP {status}"
