"""The worker's view of its Docker engine: the result of the last periodic check.

Every reader (intake, /health, log follows) answers from this record; only the check job
asks the engine, so no request, authenticated or not, costs an engine call.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from task import Unavailable, utc_now

log = logging.getLogger(__name__)


class EngineState:
    """The last engine check of one worker, replaced whole by each check (thread-safe)."""

    def __init__(self, worker_name: str) -> None:
        self._worker_name = worker_name
        self._status: dict[str, Any] = {"reachable": None}  # not checked yet
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """{"reachable": True, "version", "api_version", "checked_at"}, {"reachable": False,
        "error", "checked_at"}, or {"reachable": None} before the first check."""
        return dict(self._status)

    def record(self, status: dict[str, Any]) -> None:
        """Remember a check; log only when reachability changes."""
        with self._lock:
            was = self._status.get("reachable")
            self._status = {**status, "checked_at": utc_now()}
        if status.get("reachable") is False and was is not False:
            log.warning("worker %s takes no new tasks: %s", self._worker_name, status.get("error"))
        elif status.get("reachable") and was is False:
            log.info("worker %s: docker engine reachable again (%s)", self._worker_name, status.get("version"))

    def unreachable_reason(self) -> str | None:
        """Why the engine is unreachable at the last check, or None when it was not found so."""
        status = self._status
        if status.get("reachable") is False:
            return status.get("error") or "docker engine unreachable"
        return None

    def require_reachable(self) -> None:
        """Raise Unavailable when the last check found the engine unreachable."""
        reason = self.unreachable_reason()
        if reason is not None:
            raise Unavailable(f"{reason} (worker {self._worker_name} takes no new tasks)")
