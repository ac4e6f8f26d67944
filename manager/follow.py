"""The manager's follower of its workers' change feeds: a long poll per worker, all held by one
asyncio thread, so the manager sees a state change milliseconds after a worker does and
1,000 workers cost one thread plus a small pool that applies what they report.

The poll of a worker that is not up waits for it to come back; a poll that fails waits half a
second before the next. Failures never count against a worker's liveness (that is judged
from its liveness checks alone, manager.liveness). The reads go through
Manager.feed_position()/take_changes(), so a read begun before the worker was declared lost,
or overtaken by another read, is void.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

from manager.feed_client import AsyncChanges
from task import OrcaError

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

PAUSE = 0.5  # seconds before polling again a worker that is down or did not answer (ORCA_SYNC_INTERVAL)
APPLIERS = 16  # threads applying reports (they take the manager's lock and wait for the store: the
               # more wait at once, the more reports one commit carries)
NEW_NODES_EVERY = 1.0  # seconds between looks for nodes to follow that were added since


class Follower:
    """Follows every node's change feed; start() and stop() it (stop is idempotent)."""

    def __init__(self, manager: "Manager", feeds: AsyncChanges, long_poll: float, pause: float = PAUSE,
                 active: Callable[[], bool] = lambda: True) -> None:
        self._manager = manager
        self._pause = pause
        self._active = active  # False while this manager does not lead (several managers): no reads
        self._feeds = feeds
        self._long_poll = long_poll
        self._appliers = ThreadPoolExecutor(APPLIERS, thread_name_prefix="manager-apply")
        self._thread = threading.Thread(target=self._run, name="manager-follow", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopped = False

    def start(self) -> None:
        """Start the follower's thread."""
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self) -> None:
        """End every poll, wait for the thread and the appliers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop is not None and self._halt is not None:
            self._loop.call_soon_threadsafe(self._halt.set)
        self._thread.join(5.0)
        self._appliers.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._halt = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        followed: dict[str, asyncio.Task] = {}
        try:
            while not self._halt.is_set() and not self._stopped:
                for name in [n for n, task in followed.items() if task.done()]:
                    del followed[name]  # a removed node: followed again if it joins again
                for name, address in self._manager.node_addresses():
                    if name not in followed:
                        followed[name] = asyncio.create_task(self._follow(name, address))
                try:
                    await asyncio.wait_for(self._halt.wait(), NEW_NODES_EVERY)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in followed.values():
                task.cancel()
            await asyncio.gather(*followed.values(), return_exceptions=True)
            self._feeds.close()

    async def _follow(self, name: str, address: str) -> None:
        """Long-poll one worker's feed for as long as the follower runs."""
        loop = asyncio.get_running_loop()
        while not self._stopped and self._manager.has_node(name):
            if not await self._poll_once(loop, name, address):
                await asyncio.sleep(self._pause)

    async def _poll_once(self, loop: asyncio.AbstractEventLoop, name: str, address: str) -> bool:
        """One read of the feed, applied on the appliers; False: pause before the next."""
        if not self._active() or not self._manager.is_node_up(name):
            return False
        position = self._manager.feed_position(name)
        instance, since, _ = position
        try:
            answer = await self._feeds.changes(address, since, self._long_poll if instance else 0.0)
            if answer[0] != instance and since:  # the worker restarted: read everything again
                answer = await self._feeds.changes(address, 0)
        except OrcaError as exc:
            log.debug("worker %s: change feed not read: %s", name, exc)
            return False
        try:
            await loop.run_in_executor(self._appliers, self._manager.take_changes, name, position, answer)
        except Exception:
            log.exception("worker %s: applying its changes failed; they are read again", name)
            return False
        return True
