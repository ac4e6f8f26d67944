"""Wiring of one worker process part: Docker runtime, Worker, HTTP server, periodic jobs."""
from __future__ import annotations

import logging
import threading
from typing import Any

from common.config import Config
from common.http import Server, require_token
from common.jobs import Jobs
from common.metrics import WorkerMetrics
from node import stats as host_stats
from worker import health
from worker.api import create_app
from worker.fence import install_term_fence
from worker.join import Joiner, node_id
from worker.runtime import DockerRuntime, RuntimeFailure, RuntimeOptions
from worker.retention import Purger
from worker.upkeep import Upkeep
from worker.worker import Policy, Worker

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 2.0
DISCONNECT_CHECK_INTERVAL = 1.0  # seconds between checks of stop_after_disconnect
HEALTH_TICK = 0.25  # seconds between looks for due health checks
ENGINE_CHECK_TIMEOUT = 3.0  # seconds an engine check (the check_engine job) may take


class WorkerService:
    """One worker: serves its API, runs its jobs, and follows Docker's event stream."""

    def __init__(self, config: Config, port: int, name: str = "") -> None:
        self.name = name or config.worker_name or f"{config.worker_host}:{port}"
        options = RuntimeOptions(pull_timeout=config.pull_timeout, pids_limit=config.pids_limit,
                                 log_max_size=config.log_max_size, log_max_files=config.log_max_files)
        self.runtime = DockerRuntime(self.name, config.docker_host, config.docker_timeout, options)
        policy = Policy(stop_timeout=config.stop_timeout, restart_backoff=config.restart_backoff,
                        health_interval=config.health_interval, health_failures=config.health_failures,
                        gc_after=config.gc_after)
        self.worker = Worker(self.name, self.runtime, policy, config.start_threads)
        self.upkeep = Upkeep(self.worker, probe=health.probe)
        self.purger = Purger(self.worker, config.retention)
        self._config = config
        self._joiner: Joiner | None = None
        self._stats: dict[str, Any] = self._node_stats()
        self.metrics = WorkerMetrics(self.worker)
        self.worker.on_container = self.metrics.container_event
        app = create_app(self.worker, lambda: self._stats, allowed_images=config.allowed_images,
                         metrics=self.metrics, purger=self.purger)
        require_token(app, config.token)
        self.term_fence = install_term_fence(app)  # after the token check: strangers learn nothing
        self.server = Server(app, config.worker_host, port, threads=config.http_threads, name=f"worker-{port}")
        self.jobs = Jobs(f"worker[{self.name}]", threads=4)
        self.jobs.add("run_pending", self.worker.run_pending, config.dispatch_interval)
        self.jobs.add("sync_states", self.worker.sync_states, RECONCILE_INTERVAL)
        self.jobs.add("collect_stats", self._collect_stats, config.stats_interval)
        self.jobs.add("check_engine", self._check_engine, config.stats_interval)
        # Each task's check has its own interval: the job only starts the probes that are due.
        self.jobs.add("check_health", self.upkeep.check_health, min(config.health_interval, HEALTH_TICK))
        self.jobs.add("stop_disconnected", self.upkeep.stop_disconnected, DISCONNECT_CHECK_INTERVAL)
        self.jobs.add("collect_garbage", self._collect_garbage, max(1.0, min(60.0, config.gc_after / 10)))
        if config.retention is not None:
            self.jobs.add("purge_finished", self.purger.purge_finished, max(1.0, min(60.0, config.retention / 10)))
        self.worker.on_work = lambda: self.jobs.wake("run_pending")
        self._halt = threading.Event()
        self._close_watch = lambda: None
        self._watcher = threading.Thread(target=self._watch, name=f"events-{self.name}", daemon=True)
        self._stopped = False
        self._adopted = False

    @property
    def address(self) -> str:
        """host:port the worker API listens on."""
        return self.server.address

    def start(self) -> None:
        """Check the engine and adopt this worker's containers, then start the event watcher,
        the jobs and serving."""
        self._check_engine()
        self._adopt()
        self._watcher.start()
        self.jobs.start()
        self.server.start()
        log.info("worker %s listening on http://%s", self.name, self.address)
        self._join()

    def _adopt(self) -> None:
        """Take over the containers this worker left behind (once, when the engine answers)."""
        if self._adopted:
            return
        try:
            adopted = self.upkeep.adopt()
        except RuntimeFailure as exc:
            log.warning("worker %s could not adopt containers yet: %s", self.name, exc)
            return
        self._adopted = True
        if adopted:
            log.info("worker %s adopted %d task(s) from Docker", self.name, adopted)

    def _collect_stats(self) -> None:
        self._stats = self._node_stats()

    def _node_stats(self) -> dict[str, Any]:
        """The host's stats, with what this node offers: its capacity (ORCA_NODE_CAPACITY, or
        the host's cores, memory and disk) and its labels (ORCA_NODE_LABELS)."""
        stats = host_stats.collect()
        declared = dict(self._config.node_capacity)
        capacity = {"cpu": float(stats.get("cpu_count") or 0), "memory": int(stats["memory"]["total"]),
                    "disk": int(stats["disk"]["total"])}
        capacity.update({k: v for k, v in declared.items() if v})
        return {**stats, "capacity": capacity, "labels": dict(self._config.node_labels)}

    def _join(self) -> None:
        """Register with ORCA_MANAGER_URL's manager, in the background until it answers."""
        if not self._config.manager_urls:
            return
        registration = {"id": node_id(self._config.data_dir, self.name), "name": self.name, "address": self.address,
                        "capacity": self._stats["capacity"], "labels": self._stats["labels"]}
        self._joiner = Joiner(self._config.manager_urls, registration, self._config.token)
        self._joiner.start()

    def _collect_garbage(self) -> None:
        if self.worker.engine.get("reachable") is not False:  # no traceback per pass while the engine is down
            self.upkeep.collect_garbage()

    def _check_engine(self) -> dict[str, Any]:
        """Ask the engine for its version now, record the answer, return the worker's engine state."""
        self.worker.record_engine(self.runtime.engine_status(ENGINE_CHECK_TIMEOUT))
        return self.worker.engine

    def _watch(self) -> None:
        """Follow Docker's event stream; reconnect after a second when it breaks."""
        while not self._halt.is_set():
            try:
                events, self._close_watch = self.runtime.watch()
                self._adopt()
                self.worker.sync_states()  # catch exits missed while disconnected
                for event in events:
                    self.worker.on_container_event(event)
            except RuntimeFailure as exc:
                log.warning("worker %s: %s; retrying in 1 s", self.name, exc)
            except Exception as exc:  # a stream closed under us, or an engine hiccup
                if not self._halt.is_set():
                    log.warning("worker %s: event stream broke (%s); reconnecting", self.name, exc)
            self._halt.wait(1.0)

    def shutdown(self) -> None:
        """Stop intake, stop the jobs and the watcher, close the server. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._joiner is not None:
            self._joiner.stop()
        self.worker.close_intake()
        self.runtime.interrupt()  # a start waiting out a pull gives up now
        self.jobs.shutdown()
        self.upkeep.close()
        self._halt.set()
        self._close_watch()
        self.worker.close()
        self.server.close()
        self._watcher.join(2.0)
        self.runtime.close()
        log.info("worker %s stopped", self.name)
