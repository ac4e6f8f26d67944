"""Pure task model: states, transitions, events and validation. No I/O imports."""
from task.errors import (
    Conflict, InvalidTransition, NotFound, OrcaError, Unavailable, ValidationError,
    WorkerRejected, WorkerUnavailable, WorkerUnreachable,
)
from task.model import DESIRED_RUNNING, DESIRED_STOPPED, DEFAULT_MAX_RESTARTS, RESTART_POLICIES, SPEC_FIELDS, Task, TaskEvent, new_id, utc_now
from task.state import (
    TERMINAL, TRANSITIONS, State, backoff_delay, can_transition, check_transition, exit_outcome, should_restart,
)
from task.validation import parse_event, parse_size, parse_task, parse_uuid

__all__ = [
    "Conflict", "InvalidTransition", "NotFound", "OrcaError", "Unavailable", "ValidationError",
    "WorkerRejected", "WorkerUnavailable", "WorkerUnreachable", "SPEC_FIELDS", "Task", "TaskEvent", "new_id",
    "utc_now", "TERMINAL", "TRANSITIONS", "State", "can_transition", "check_transition",
    "exit_outcome", "should_restart", "backoff_delay", "DEFAULT_MAX_RESTARTS", "DESIRED_RUNNING", "DESIRED_STOPPED", "RESTART_POLICIES", "parse_event", "parse_size", "parse_task", "parse_uuid",
]
