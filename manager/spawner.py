"""Worker processes the manager starts itself (the seed API's `"spawn": true`): the only
adapter of child processes. A spawned worker is `python main.py worker` on the asked host
and port, with the manager's environment; on Linux it is told to stop when the manager dies
(PR_SET_PDEATHSIG), and the manager stops it when it removes its node or shuts down."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from task import Conflict

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 15.0  # seconds a spawned worker gets to stop before SIGKILL
START_TIMEOUT = 20.0  # seconds a spawned worker gets to listen
_DROPPED = ("ORCA_MANAGER_URL", "ORCA_WORKERS", "ORCA_WORKER_COUNT", "ORCA_NODE_CAPACITY", "ORCA_NODE_LABELS")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Spawner:
    """The worker processes this manager started, by node name."""

    def __init__(self, data_dir: str) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen] = {}

    def spawned(self, name: str) -> bool:
        with self._lock:
            return name in self._children

    def start(self, name: str, host: str, port: int) -> int:
        """Start a worker named `name` on host:port and wait until it listens; return its pid.

        Raises:
            Conflict: a worker of that name was already spawned, or the new one exited (the
                port taken?) or did not listen within START_TIMEOUT.
        """
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env.update(ORCA_WORKER_HOST=host, ORCA_WORKER_PORT=str(port), ORCA_WORKER_NAME=name)
        Path(self._data_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(self._data_dir) / f"spawned-{name.replace(':', '_')}.log"
        with self._lock:
            if name in self._children:
                raise Conflict(f"a worker named {name} was already spawned")
            with open(log_path, "ab") as out:
                child = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "worker"], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            self._children[name] = child
        if not self._listening(child, host, port):
            self.stop(name)
            raise Conflict(f"the worker spawned on {host}:{port} did not start (is the port taken? see {log_path})")
        log.info("spawned worker %s on %s:%d (pid %d)", name, host, port, child.pid)
        return child.pid

    def _listening(self, child: subprocess.Popen, host: str, port: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and child.poll() is None:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return child.poll() is None
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self, name: str) -> bool:
        """SIGTERM the spawned worker (SIGKILL after STOP_TIMEOUT); False if we did not spawn it."""
        with self._lock:
            child = self._children.pop(name, None)
        if child is None:
            return False
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.info("spawned worker %s stopped (exit status %s)", name, child.returncode)
        return True

    def shutdown(self) -> None:
        """Stop every spawned worker (the manager is shutting down). Idempotent."""
        with self._lock:
            names = list(self._children)
        for name in names:
            self.stop(name)
