"""Task states and the transition table (as in the book), plus the exit decision."""
from __future__ import annotations

from enum import Enum

from task.errors import InvalidTransition


class State(str, Enum):
    """Observed state of a task."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for states a task only leaves by an explicit restart."""
        return self in TERMINAL


TERMINAL = frozenset({State.COMPLETED, State.FAILED})

TRANSITIONS: dict[State, frozenset[State]] = {
    # pending -> completed: a stop before placement cancels the task on the spot.
    State.PENDING: frozenset({State.SCHEDULED, State.COMPLETED}),
    # scheduled -> completed: a stop that arrives before the container started cancels it.
    State.SCHEDULED: frozenset({State.SCHEDULED, State.RUNNING, State.FAILED, State.COMPLETED}),
    State.RUNNING: frozenset({State.RUNNING, State.COMPLETED, State.FAILED, State.SCHEDULED}),
    State.FAILED: frozenset({State.SCHEDULED}),
    State.COMPLETED: frozenset(),
}


def can_transition(src: State, dst: State) -> bool:
    """Return whether the table allows a task in `src` to move to `dst`."""
    return dst in TRANSITIONS[State(src)]


def check_transition(task_id: str, src: State, dst: State) -> None:
    """Raise InvalidTransition (naming the task) unless `src -> dst` is allowed."""
    if not can_transition(src, dst):
        raise InvalidTransition(f"task {task_id} cannot go from {State(src).value} to {State(dst).value}")


def exit_outcome(exit_code: int | None, oom_killed: bool, stop_requested: bool) -> tuple[State, str | None]:
    """Decide the terminal state of a task whose container has exited.

    Args:
        exit_code: the container's exit code (None if Docker did not report one).
        oom_killed: Docker's State.OOMKilled; a memory-killed container may still exit 0.
        stop_requested: the task was stopped on purpose (DELETE), so any exit is a completion.
    Returns:
        (state, error): COMPLETED with no error, or FAILED with the reason.
    """
    if stop_requested:
        return State.COMPLETED, None
    if oom_killed:
        return State.FAILED, "out of memory"
    if exit_code == 0:
        return State.COMPLETED, None
    return State.FAILED, f"exited with code {exit_code}"


def should_restart(policy: str, outcome: State, restart_count: int, max_restarts: int) -> bool:
    """Decide whether an exited task runs again.

    Args:
        policy: "no", "on-failure" or "always".
        outcome: the state exit_outcome() decided (COMPLETED or FAILED).
        restart_count: restarts done so far; max_restarts: the cap.
    """
    if restart_count >= max_restarts or policy == "no":
        return False
    return policy == "always" or outcome is State.FAILED


def backoff_delay(restart_count: int, base: float, cap: float = 30.0, jitter: float = 0.0) -> float:
    """Exponential backoff before restart number `restart_count + 1`.

    `jitter` is a number in [0, 1) (random in production) that adds up to 50% of the delay,
    so tasks that failed together do not restart in lock step.
    """
    delay = min(cap, base * (2 ** min(restart_count, 32)))  # the exponent is bounded: no huge integers
    return delay * (1.0 + 0.5 * jitter)
