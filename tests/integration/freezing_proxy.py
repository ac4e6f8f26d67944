"""A TCP proxy on loopback that can freeze a client at any byte it sends, as `kill -STOP` of
the client process would: from the cut on, nothing more of what the client sends reaches the
server, while the server's answers still flow back (the kernel would buffer them). Used to
stop a manager's PostgreSQL session at every point of a write, deterministically."""
from __future__ import annotations

import socket
import threading


class FreezingProxy:
    """Forwards 127.0.0.1:<port> to `target`. After `arm(limit)`, each connection forwards at
    most `limit` more client bytes (None: no limit) and records the bytes it forwarded."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._armed = False
        self.recorded = bytearray()  # client bytes forwarded since arm()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, limit: int | None) -> None:
        with self._lock:
            self._armed, self._limit, self.recorded = True, limit, bytearray()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                _shut(server)
                return
            with self._lock:
                if self._armed:
                    if self._limit is not None:
                        data = data[:max(0, self._limit - len(self.recorded))]
                    self.recorded += data
            if data:
                try:
                    server.sendall(data)
                except OSError:
                    return

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                _shut(sink)
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def frontend_messages(data: bytes) -> list[tuple[str, int]]:
    """(type, end offset) of each PostgreSQL frontend message in `data` (after start-up)."""
    out, at = [], 0
    while at + 5 <= len(data):
        length = int.from_bytes(data[at + 1:at + 5], "big")
        out.append((chr(data[at]), at + 1 + length))
        at += 1 + length
    return out
