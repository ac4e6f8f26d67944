"""The lifecycle rules in one place: how a task's state may change, on the worker and on the
manager, and what to do next. Pure: no I/O, no clocks (times are passed in).

The model (README, "The state model"): a task has a desired state (the user's intent) and an
observed state (what workers report). Each placement is an attempt with its own number;
restarts under the task's policy happen inside an attempt on its worker, a move to another
worker is a new attempt. A worker's reports carry a version that only grows; the manager
applies a report only if it is for the task's current attempt on the task's current node and
newer than the last one applied. A terminal state never changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from task.model import DESIRED_STOPPED, Task, utc_now
from task.state import State, check_transition, exit_outcome, should_restart

ACTIVE = frozenset({State.SCHEDULED, State.RUNNING})


@dataclass(frozen=True)
class Report:
    """A worker's copy of a task, parsed from the wire (task.wire.parse_report)."""

    task_id: str
    attempt: int
    version: int
    state: State
    restart_count: int = 0
    container_id: str | None = None
    exit_code: int | None = None
    error: str | None = None
    host_ports: dict[str, int] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    healthy: bool | None = None

    @property
    def has_copy(self) -> bool:
        """True while the worker may hold something of this attempt: a running or starting
        task, or a container not yet removed."""
        return self.state in ACTIVE or bool(self.container_id)


class Verdict(str, Enum):
    """What the manager does with a report."""

    APPLY = "apply"  # the current attempt, newer than what we hold
    IGNORE = "ignore"  # old news, or nothing left to clean up
    STALE = "stale"  # a copy that should not exist: stop it and remove its container


def judge(task: Task, node: str, report: Report) -> Verdict:
    """Decide what a report from worker `node` means for `task` (the manager's record)."""
    current = node == task.node and report.attempt == task.attempt
    if not current:
        return Verdict.STALE if report.has_copy else Verdict.IGNORE
    if task.state.is_terminal:  # terminal is final: a copy still running here must go
        return Verdict.STALE if report.state in ACTIVE else Verdict.IGNORE
    if report.version <= task.version:
        return Verdict.IGNORE
    return Verdict.APPLY


OBSERVED = ("restart_count", "container_id", "exit_code", "error", "started_at", "finished_at", "healthy")


def apply_report(task: Task, report: Report) -> None:
    """Take a newer report of the current attempt (after judge() said APPLY).

    Raises:
        InvalidTransition: the report would move the task along an edge the table forbids.
    """
    check_transition(task.id, task.state, report.state)
    task.state, task.version = report.state, report.version
    for name in OBSERVED:
        setattr(task, name, getattr(report, name))
    task.host_ports = dict(report.host_ports or {})


# ----- the manager's next step for a task


class Action(str, Enum):
    """What the manager's reconciler does next for a task."""

    NONE = "none"
    PLACE = "place"  # choose a node and record a new attempt, then send it
    SEND_RUN = "send_run"  # the current attempt has not reached its worker yet
    SEND_STOP = "send_stop"  # the user stopped it: tell its worker until it reports it ended
    CANCEL = "cancel"  # stopped before any worker has it: complete it here


def next_action(task: Task, unsent: bool) -> Action:
    """The next step for `task`; `unsent`: its current attempt is not known to have arrived."""
    if task.state.is_terminal:
        return Action.NONE
    if task.desired_state == DESIRED_STOPPED:
        return Action.CANCEL if task.node is None else Action.SEND_STOP
    if task.node is None:
        return Action.PLACE
    return Action.SEND_RUN if unsent else Action.NONE


def place(task: Task, node: str) -> None:
    """Record a new attempt of `task` on `node` (before anything is sent)."""
    check_transition(task.id, task.state, State.SCHEDULED)
    task.attempt += 1
    task.node, task.state, task.version, task.pending_reason = node, State.SCHEDULED, 0, None
    task.moving_from = None
    task.container_id, task.exit_code, task.host_ports = None, None, {}
    task.started_at = task.finished_at = task.healthy = None


def cancel(task: Task) -> None:
    """Complete a task that was stopped before any worker had it."""
    check_transition(task.id, task.state, State.COMPLETED)
    task.state, task.finished_at = State.COMPLETED, utc_now()


def fail(task: Task, error: str) -> None:
    """End the current attempt as failed (e.g. its worker refused it)."""
    check_transition(task.id, task.state, State.FAILED)
    task.state, task.error, task.finished_at = State.FAILED, error, utc_now()


def move_off(task: Task, node: str) -> None:
    """Detach `task` from its attempt on `node` so it is placed elsewhere as a new attempt
    (the node is draining). Not a failure: restart_count is unchanged."""
    check_transition(task.id, task.state, State.SCHEDULED)
    task.moving_from = {"node": node, "attempt": task.attempt}
    task.state, task.node = State.SCHEDULED, None
    task.error = f"moved off node {node} (drained)"


def leave_removed(task: Task, node: str) -> None:
    """Detach `task` from a node the manager no longer has (removed while the task was being
    placed there): it is placed again as a new attempt, or completed if the user stopped it.
    Not a failure: restart_count is unchanged."""
    check_transition(task.id, task.state, State.SCHEDULED)
    task.state, task.node = State.SCHEDULED, None
    task.error = f"node {node} was removed; placing the task again"


# ----- a lost worker


class LostOutcome(str, Enum):
    """What becomes of a task whose worker was declared lost."""

    COMPLETE = "complete"  # the user had stopped it
    FAIL = "fail"  # its policy allows no more restarts
    MOVE = "move"  # a new attempt elsewhere
    WAIT = "wait"  # it stops itself after stop_after_disconnect: move it only after that


def on_node_lost(task: Task, node: str, cut_off_for: float, margin: float) -> LostOutcome:
    """Settle a task of a lost worker, `cut_off_for` seconds after its last answer.

    A task with stop_after_disconnect is moved only once its worker has stopped it itself
    (that many seconds plus `margin` for the stop), so it never runs twice.
    """
    if task.desired_state == DESIRED_STOPPED:
        done = State.COMPLETED if task.state is State.RUNNING else State.FAILED
        if done is State.FAILED:
            task.error = f"worker {node} lost before the task started"
        task.state, task.finished_at = done, utc_now()
        return LostOutcome.COMPLETE
    if task.stop_after_disconnect is not None and cut_off_for < task.stop_after_disconnect + margin:
        return LostOutcome.WAIT
    if task.restart_policy == "no" or task.restart_count >= task.max_restarts:
        why = "" if task.restart_policy == "no" else f"; gave up after {task.restart_count} restarts"
        fail(task, f"worker {node} lost{why}")
        return LostOutcome.FAIL
    check_transition(task.id, task.state, State.SCHEDULED)
    task.state, task.node = State.SCHEDULED, None
    task.restart_count += 1
    task.error = f"worker {node} lost; moving (restart {task.restart_count} of {task.max_restarts})"
    return LostOutcome.MOVE


# ----- a container's end (worker)


@dataclass(frozen=True)
class Exit:
    """How a container ended, as the worker's runtime saw it (None fields: unknown)."""

    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    finished_at: str | None = None
    gone: bool = False  # the container disappeared


def on_exit(task: Task, end: Exit, stop_requested: bool, failure: str | None, delay: float) -> bool:
    """Record a container's end on the worker: completed, failed, or scheduled again under the
    restart policy (running -> failed -> scheduled in one step). `failure` overrides the
    outcome (a failed health check, a disconnect). Returns False if the task was not running."""
    if task.state is not State.RUNNING:
        return False
    outcome, error = exit_outcome(end.exit_code, end.oom_killed, stop_requested)
    if end.gone and not stop_requested:
        outcome, error = State.FAILED, "container disappeared"
    if failure and not stop_requested:
        outcome, error = State.FAILED, failure
    if end.error and outcome is State.FAILED:
        error = f"{error}: {end.error}"
    task.exit_code, task.finished_at = end.exit_code, end.finished_at or utc_now()
    task.healthy = None  # a new container (or none) has not been probed yet
    if not stop_requested and should_restart(task.restart_policy, outcome, task.restart_count, task.max_restarts):
        if outcome is State.FAILED:
            check_transition(task.id, task.state, State.FAILED)
        check_transition(task.id, State.FAILED if outcome is State.FAILED else task.state, State.SCHEDULED)
        task.restart_count += 1
        what = error or f"exited with code {end.exit_code}"
        task.state = State.SCHEDULED
        task.error = f"{what}; restart {task.restart_count} of {task.max_restarts} in {delay:.1f}s"
        return True
    if outcome is State.FAILED and task.restart_policy != "no" and task.restart_count >= task.max_restarts > 0:
        error = f"{error}; gave up after {task.restart_count} restarts"
    check_transition(task.id, task.state, outcome)
    task.state, task.error = outcome, error
    return True
