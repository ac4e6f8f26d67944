"""The simulated network: the manager's WorkerAPI (manager.client.WorkerClient's contract)
over in-process hosts, through JSON and the real wire parsers, with message faults."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from common.http import status_for
from task import (NotFound, OrcaError, State, Task, TaskEvent, Unavailable, ValidationError,
                  WorkerRejected, WorkerUnavailable, WorkerUnreachable, parse_uuid)
from task.wire import parse_order
from manager.client import order_answer
from tests.sim.host import WorkerHost
from worker.orders import take_batch

LOST, ANSWER_LOST, DELAYED, DUPLICATED = "lost", "answer_lost", "delayed", "duplicated"


class ManagerCrash(BaseException):
    """Raised inside a manager's call: the manager process dies there (no except catches it)."""


@dataclass
class Message:
    """A request on the wire to one incarnation of a worker."""

    address: str
    incarnation: int
    method: str
    args: tuple[Any, ...]


def serve(host: WorkerHost, method: str, args: tuple[Any, ...]) -> tuple[int, Any, dict[str, str]]:
    """What worker/api.py does with a request: (status, JSON body, headers). Errors map to
    statuses exactly as common.http does."""
    worker = host.worker
    assert worker is not None
    try:
        if method == "health":
            engine = worker.engine
            ok = engine.get("reachable") is not False
            return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "docker": engine}, {}
        worker.heard_from_manager()
        if host.unavailable:
            raise Unavailable(f"worker {host.name} answers 503")
        if method == "post" and isinstance(json.loads(args[0]), list):  # POST /tasks/batch
            return 200, take_batch(worker, json.loads(args[0])), {}
        if method == "post":
            event = parse_order(json.loads(args[0]))
            task, created = worker.submit(event)
            return (202 if event.state is State.COMPLETED else 201 if created else 200), task.to_dict(), {}
        if method == "get":
            if not worker.ready:
                raise Unavailable(f"worker {worker.name} is not ready")
            if host.purger is not None:
                host.purger.acknowledge(args[0])
            version, tasks = worker.db.changed_since(args[0])
            return 200, [t.to_dict() for t in tasks], {"version": str(version), "instance": host.instance}
        if method == "delete":
            task_id, attempt = args
            try:
                task_id = parse_uuid(task_id, "task id")
            except ValidationError:
                raise NotFound(f"task {task_id[:64]} not found") from None
            task, _ = worker.submit(TaskEvent(task=Task(id=task_id, attempt=attempt), state=State.COMPLETED))
            return 202, task.to_dict(), {}
        if method == "purge":
            return 200, host.purger.purge(parse_uuid(args[0], "task id")).to_dict(), {}
        if method == "stats":
            return 200, {"cpu_count": 4, "memory": {"total": 1 << 33}, "task_count": worker.active_count()}, {}
    except OrcaError as exc:
        return status_for(exc), {"error": str(exc)}, {}
    raise AssertionError(f"unknown method {method}")


@dataclass
class SimNetwork:
    """Implements send_event/stop_task/changes/stats/health like WorkerClient, with faults:
    per-call loss, lost answers, delays and duplicates (rate `fault_rate`), partitions,
    frozen and crashed hosts (no answer), and the hooks `interleave` (run inside the next
    changes() call, between the worker's read and the answer) and `crash_manager` (the
    manager dies inside its next call, after the request was delivered)."""

    hosts: dict[str, WorkerHost]
    rng: random.Random
    fault_rate: float = 0.0
    in_flight: list[Message] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    unanswered_stats: dict[str, int] = field(default_factory=dict)  # in a row, per address
    interleave: Callable[[], None] | None = None  # run inside the next changes() call
    hold: dict[str, Callable[[], None]] = field(default_factory=dict)  # method -> run before its answer returns
    rule: Callable[[str, str], str | None] = lambda address, method: None  # a scripted fault per call
    delivered: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)  # (address, method, args)
    crash_manager: bool = False
    trace: Callable[[str], None] = lambda line: None

    def count(self, kind: str) -> None:
        """Count an injected fault by kind."""
        self.faults[kind] = self.faults.get(kind, 0) + 1

    # ----- the WorkerAPI

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]:
        return self._call(address, "post", (json.dumps(event.to_dict()),))[0]

    def stop_task(self, address: str, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        return self._call(address, "delete", (task_id, attempt))[0]

    def purge_task(self, address: str, task_id: str) -> dict[str, Any]:
        return self._call(address, "purge", (task_id,))[0]

    def send_orders(self, address: str, events: list[TaskEvent]) -> list[Any]:
        """Like WorkerClient.send_orders: one request for the batch (faults hit it whole),
        each answer mapped to the task or its error."""
        try:
            answers = self._call(address, "post", (json.dumps([e.to_dict() for e in events]),))[0]
        except OrcaError as exc:
            return [exc] * len(events)
        return [order_answer(address, answer) for answer in answers]

    def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]:
        body, headers = self._call(address, "get", (since,))
        return headers.get("instance", ""), int(headers.get("version", "0")), body

    def stats(self, address: str) -> dict[str, Any]:
        try:
            body = self._call(address, "stats", ())[0]
        except WorkerUnreachable:
            self.unanswered_stats[address] = self.unanswered_stats.get(address, 0) + 1
            raise
        except OrcaError:
            self.unanswered_stats[address] = 0
            raise
        self.unanswered_stats[address] = 0
        return body

    def health(self, address: str) -> dict[str, Any]:
        return self._call(address, "health", ())[0]

    # ----- delivery

    def _call(self, address: str, method: str, args: tuple[Any, ...]) -> tuple[Any, dict[str, str]]:
        host = self.hosts[address]
        if not host.reachable:
            if host.frozen and host.worker is not None and self.rng.random() < 0.5:
                self.in_flight.append(Message(address, host.incarnation, method, args))
                self.count("frozen_request_queued")
            raise WorkerUnreachable(f"worker {address} unreachable ({host.why_unreachable})")
        fault = self.rule(address, method) or self._fault()
        if fault == LOST:
            raise WorkerUnreachable(f"worker {address}: request lost")
        if fault == DELAYED:
            self.in_flight.append(Message(address, host.incarnation, method, args))
            raise WorkerUnreachable(f"worker {address}: request delayed")
        status, body, headers = serve(host, method, json.loads(json.dumps(args)))
        body = json.loads(json.dumps(body))
        self._record(address, method, args)
        self.trace(f"    {method} {address} {args[1:] if method == 'delete' else ''} -> {status}")
        if fault == DUPLICATED:
            self.in_flight.append(Message(address, host.incarnation, method, args))
        if self.crash_manager:
            self.crash_manager = False
            self.count("manager_crash_mid_call")
            raise ManagerCrash(f"manager died during {method} to {address}")
        if fault == ANSWER_LOST:
            raise WorkerUnreachable(f"worker {address}: answer lost")
        if method == "get" and self.interleave is not None:
            hook, self.interleave = self.interleave, None
            hook()
        if method in self.hold:
            self.hold.pop(method)()
        return _answer(address, method, status, body), headers

    def _fault(self) -> str | None:
        if self.fault_rate <= 0 or self.rng.random() >= self.fault_rate:
            return None
        kind = self.rng.choice((LOST, ANSWER_LOST, DELAYED, DUPLICATED))
        self.count(f"net_{kind}")
        return kind

    def _record(self, address: str, method: str, args: tuple[Any, ...]) -> None:
        """Note a delivered request; a batch counts as its events: a run is a "post", a stop
        a "delete" (task id, attempt), as if each had been sent alone."""
        body = json.loads(args[0]) if method == "post" else None
        if not isinstance(body, list):
            self.delivered.append((address, method, args))
            return
        for order in body:
            if order.get("state") == State.COMPLETED.value:
                self.delivered.append((address, "delete", (order["task"]["id"], order.get("attempt"))))
            else:
                self.delivered.append((address, "post", (json.dumps(order),)))

    def deliver_one(self, index: int) -> bool:
        """Deliver an in-flight request now (its answer goes nowhere); a request to a dead
        incarnation is dropped. Returns False when nothing could be delivered."""
        for offset in range(len(self.in_flight)):
            message = self.in_flight[(index + offset) % len(self.in_flight)]
            host = self.hosts[message.address]
            if host.incarnation != message.incarnation or host.worker is None:
                self.in_flight.remove(message)
                return True
            if host.reachable:
                self.in_flight.remove(message)
                self.trace(f"    late delivery: {message.method} {message.address} {message.args[1:]}")
                self._record(message.address, message.method, message.args)
                serve(host, message.method, message.args)
                return True
        return False


def _answer(address: str, method: str, status: int, body: Any) -> Any:
    """The client's side of a status, as manager.client.WorkerClient raises it."""
    if status < 400 or (method == "health" and status == 503 and isinstance(body, dict) and "docker" in body):
        return body
    message = str(body.get("error"))[:500] if isinstance(body, dict) else f"HTTP {status}"
    if status >= 500:
        raise WorkerUnavailable(f"worker {address} answered {status}: {message}")
    if status == 404:
        raise NotFound(message)
    raise WorkerRejected(message)
