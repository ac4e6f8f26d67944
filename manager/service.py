"""Wiring of the manager: Manager, worker client, scheduler, HTTP server, periodic jobs."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait

from common.config import Config
from common.http import Server, require_token
from common.jobs import Jobs
from common.metrics import ManagerMetrics
from manager.api import MAX_LONG_REQUESTS, create_app
from manager.events_api import MAX_EVENT_STREAMS
from manager.client import WorkerClient
from manager.cluster import cluster_view
from manager.dispatch import fan_out
from manager.feed_client import AsyncChanges
from manager.follow import Follower
from manager.manager import Manager
from manager.cluster_nodes import ClusterNodes
from manager.services import Services
from manager.spawner import Spawner
from scheduler import get_scheduler
from store import open_store

log = logging.getLogger(__name__)

SEND_THREADS = 64  # batched sends to workers in flight at once (one per node; each mostly waits for its worker)
CHECK_THREADS = 16  # liveness checks in flight at once
SERVICES_INTERVAL = 1.0  # seconds between the services' safety-net reconcile passes (changes wake them at once)
LONG_POLL = 2.0  # seconds a watcher's GET /tasks?since=N&wait=S may wait for a change


class ManagerService:
    """The manager process part: serves the API and runs dispatch and sync passes."""

    def __init__(self, config: Config, workers: list[str]) -> None:
        self._client = client = WorkerClient(connect_timeout=1.0, read_timeout=config.request_timeout,
                                             token=config.token)
        # A frozen manager's open transaction is ended well within a lease's life (store/postgres.py).
        store = open_store(config.store, config.data_dir, "manager", config.database_url,
                           hold_limit=min(5.0, config.lease_ttl / 2))
        self.manager = Manager(workers, client, get_scheduler(config.scheduler), store, config.down_after)
        self.metrics = ManagerMetrics(self.manager)
        self.manager.on_placed = self.metrics.placed
        self._send_pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="manager-send")
        self.manager.fan_out = fan_out(self._send_pool)
        self._check_pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="manager-check")
        self.manager.fan_out_checks = self._check_later
        self._check_interval = config.stats_interval
        # A worker whose change feed (a long poll answered at least every LONG_POLL s) answered
        # in the last half interval is alive: its /stats and /health are asked only every
        # third interval, so 1,000 idle workers cost 130 calls a second rather than 400.
        self.manager.fresh_for = min(config.stats_interval / 2, LONG_POLL + 0.5)
        self.manager.refresh_after = 3 * config.stats_interval
        self.services = Services(self.manager, store)
        self.services.on_event = lambda kind, data: self.manager.events.publish("service", kind, data)
        self.cluster_nodes = ClusterNodes(self.manager, Spawner(config.data_dir))
        app = create_app(self.manager, allowed_images=config.allowed_images, metrics=self.metrics,
                         services=self.services, placeholder_image=config.placeholder_image,
                         cluster_nodes=self.cluster_nodes,
                         cluster=lambda: self.cluster.view() if self.cluster else
                         cluster_view(None, self.address, self.address))
        require_token(app, config.token)
        # Follows, waits and event streams each hold a request thread: they get their own,
        # so ORCA_HTTP_THREADS stay for short requests.
        self.server = Server(app, config.manager_host, config.manager_port,
                             threads=config.http_threads + MAX_LONG_REQUESTS + MAX_EVENT_STREAMS, name="manager")
        self.cluster = None
        if config.database_url:
            from manager.ha import ClusterRole  # loads the database driver: only when one is used

            self.cluster = ClusterRole(config, store, self.manager, client, config.manager_address or self.server.address,
                                       self._reload)
        gate = self.cluster.gate if self.cluster else (lambda job: job)
        if self.cluster:
            self.cluster.forwarder.install(app)
        self.jobs = Jobs("manager", threads=5)
        self.jobs.add("sync_nodes", gate(self.manager.sync_nodes), config.stats_interval)
        self.jobs.add("dispatch_pending", gate(self.manager.dispatch_pending), config.dispatch_interval)
        self.jobs.add("reconcile_services", gate(self.services.reconcile_services), SERVICES_INTERVAL)
        self.jobs.add("settle_leaves", gate(self.cluster_nodes.settle_leaves), config.stats_interval)
        self.manager.retention = config.retention
        if config.retention is not None:
            self.jobs.add("purge_finished", gate(self.manager.purge_finished), max(1.0, min(60.0, config.retention / 10)))
        self.manager.on_work = lambda: self.jobs.wake("dispatch_pending")
        self.manager.on_service_change = self.services.on_change = lambda: self.jobs.wake("reconcile_services")
        self._workers = workers
        self._stopped = False
        feeds = AsyncChanges(connect_timeout=1.0, read_timeout=config.request_timeout, token=config.token,
                             term=lambda: client.term)
        self._follower = Follower(self.manager, feeds, LONG_POLL, pause=config.sync_interval,
                                  active=lambda: not self.cluster or self.cluster.leading)
        self.manager.on_node_added = self._node_added

    def _check_later(self, calls: list) -> list[int]:
        """Hand a pass's liveness checks to the pool; wait for them at most one check interval
        (a frozen worker's check goes on alone, and the next pass skips it)."""
        futures = [self._check_pool.submit(call) for call in calls]
        wait(futures, timeout=self._check_interval)
        return []

    def _node_added(self, node_name: str) -> None:
        """A worker joined: check its liveness now rather than at the next tick (the follower
        starts reading its change feed within a second)."""
        self.jobs.wake("sync_nodes")

    def _reload(self) -> None:
        """Replace what this manager holds in memory by the database's (several managers)."""
        self.manager.reload()
        self.services.reload()

    @property
    def address(self) -> str:
        """host:port the manager API listens on."""
        return self.server.address

    def start(self) -> None:
        """Claim the lease (several managers), start the jobs and serve."""
        if self.cluster:
            self.cluster.start()
        self.jobs.start()
        self._follower.start()
        self.server.start()
        names = [node.name for node in self.manager.nodes()]
        log.info("manager listening on http://%s with workers %s", self.address, ", ".join(names) or "(none)")
        if not names:
            log.warning("no workers yet: start workers with ORCA_MANAGER_URL=http://%s, or list them in "
                        "ORCA_WORKERS=host:port,...", self.address)

    def shutdown(self) -> None:
        """Stop intake, stop the jobs, close the server. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.manager.close_intake()
        if self.cluster:
            self.cluster.shutdown()  # hands the lease over at once
        self._follower.stop()  # ends the long polls
        self._client.close()
        self.jobs.shutdown()
        self._send_pool.shutdown(wait=True, cancel_futures=True)
        self._check_pool.shutdown(wait=True, cancel_futures=True)
        self.cluster_nodes.shutdown()  # the workers this manager spawned
        self.server.close()
        self.manager.close()
        log.info("manager stopped")
