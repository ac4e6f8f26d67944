"""Prometheus metrics of a manager and of a worker, served at GET /metrics.

Each app has its own registry, never prometheus_client's global one: an all-in-one process
(and a test) runs several workers side by side. Gauges are read from the Manager or Worker
when scraped; counters and the dispatch histogram are fed by their hooks
(`Manager.on_placed`, `Worker.on_container`), which the services wire.
"""
from __future__ import annotations

import collections
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from flask import Flask, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from task import State, Task

if TYPE_CHECKING:
    from manager.manager import Manager
    from worker.worker import Worker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STARTED, START_FAILED, RESTARTED = "started", "start_failed", "restarted"
EXIT_OUTCOMES = (State.COMPLETED.value, State.FAILED.value, RESTARTED)


class ManagerMetrics:
    """orca_tasks{state}, orca_events_pending, orca_worker_up{worker}, orca_engine_reachable{worker}
    (read at scrape time) and orca_dispatch_seconds (fed by `placed`)."""

    def __init__(self, manager: "Manager") -> None:
        self.registry = CollectorRegistry()
        self._dispatch = Histogram("orca_dispatch_seconds", "Seconds from a task's creation to a worker "
                                   "accepting its first attempt", buckets=DISPATCH_BUCKETS, registry=self.registry)
        self.registry.register(_ManagerCollector(manager))

    def placed(self, task: Task) -> None:
        """A worker accepted an attempt of `task` (Manager.on_placed); the first attempt is timed."""
        if task.attempt == 1 and task.created_at:
            self._dispatch.observe(_seconds_since(task.created_at))


class WorkerMetrics:
    """orca_container_starts_total, orca_container_start_failures_total,
    orca_container_exits_total{outcome} (fed by `container_event`) and orca_worker_tasks{state}
    (read at scrape time)."""

    def __init__(self, worker: "Worker") -> None:
        self.registry = CollectorRegistry()
        self._starts = Counter("orca_container_starts", "Containers started", registry=self.registry)
        self._failures = Counter("orca_container_start_failures", "Containers that could not be created or "
                                 "started (image missing, Docker refused)", registry=self.registry)
        self._exits = Counter("orca_container_exits", "Containers that ended, by what became of the task",
                              ["outcome"], registry=self.registry)
        for outcome in EXIT_OUTCOMES:
            self._exits.labels(outcome)  # every series from the start, at 0
        self.registry.register(_WorkerCollector(worker))

    def container_event(self, what: str) -> None:
        """Count a container event (Worker.on_container): started, start_failed, or the exit
        outcome completed, failed or restarted."""
        if what == STARTED:
            self._starts.inc()
        elif what == START_FAILED:
            self._failures.inc()
        elif what in EXIT_OUTCOMES:
            self._exits.labels(what).inc()


class _ManagerCollector(Collector):
    def __init__(self, manager: "Manager") -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        tasks, pending, up, engine = _manager_families()
        for state, count in self._manager.task_counts().items():  # kept as tasks change: no walk
            tasks.add_metric([state], count)
        pending.add_metric([], self._manager.pending_count())
        for node in self._manager.nodes():
            up.add_metric([node.name], 1 if node.is_up else 0)
            reachable = node.engine.get("reachable")
            if reachable is not None:  # unknown until the worker's /health answered
                engine.add_metric([node.name], 1 if reachable else 0)
        return iter((tasks, pending, up, engine))

    def describe(self) -> Iterator[Metric]:
        return iter(_manager_families())


class _WorkerCollector(Collector):
    def __init__(self, worker: "Worker") -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        tasks = _worker_family()
        _by_state(tasks, (t.state for t in self._worker.db.list()))
        return iter((tasks,))

    def describe(self) -> Iterator[Metric]:
        return iter((_worker_family(),))


def _manager_families() -> tuple[GaugeMetricFamily, ...]:
    return (GaugeMetricFamily("orca_tasks", "Tasks by state", labels=["state"]),
            GaugeMetricFamily("orca_events_pending", "Task events waiting to be sent to a worker"),
            GaugeMetricFamily("orca_worker_up", "1 while the worker answers its polls, 0 when it is down",
                              labels=["worker"]),
            GaugeMetricFamily("orca_engine_reachable", "1 while the worker's Docker engine answers, 0 when not "
                              "(absent until known)", labels=["worker"]))


def _worker_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("orca_worker_tasks", "Tasks on this worker by state", labels=["state"])


def _by_state(family: GaugeMetricFamily, states: Iterator[State]) -> None:
    """One sample per state, zeros included (a series never disappears)."""
    counts = collections.Counter(states)
    for state in State:
        family.add_metric([state.value], counts.get(state, 0))


def _seconds_since(timestamp: str) -> float:
    """Seconds from an ISO 8601 UTC time to now (0 if it cannot be read or lies ahead)."""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def serve_metrics(app: Flask, registry: CollectorRegistry) -> None:
    """Add GET /metrics to `app`, answering `registry` in Prometheus' text format."""
    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(registry), content_type=CONTENT_TYPE)
