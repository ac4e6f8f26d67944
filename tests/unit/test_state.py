"""The task state machine: the transition table, the exit decision and terminal states.

The expected table is written out here from ARCHITECTURE.md ("States"), not derived from
task.state.TRANSITIONS, so a change to the code's table fails these tests.
"""
import itertools
import re

import pytest

from task import InvalidTransition, State, TRANSITIONS, can_transition, check_transition, exit_outcome

ALLOWED = {
    ("pending", "scheduled"), ("pending", "completed"),
    ("scheduled", "scheduled"), ("scheduled", "running"), ("scheduled", "failed"), ("scheduled", "completed"),
    ("running", "running"), ("running", "completed"), ("running", "failed"), ("running", "scheduled"),
    ("failed", "scheduled"),
}
ALL_PAIRS = list(itertools.product(State, State))
TASK_ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"


def test_table_covers_all_five_states_and_25_pairs():
    assert set(TRANSITIONS) == set(State)
    assert len(ALL_PAIRS) == 25


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS, ids=[f"{s.value}->{d.value}" for s, d in ALL_PAIRS])
def test_transition_pair(src, dst):
    if (src.value, dst.value) in ALLOWED:
        assert can_transition(src, dst) is True
        assert check_transition(TASK_ID, src, dst) is None
    else:
        assert can_transition(src, dst) is False
        with pytest.raises(InvalidTransition) as raised:
            check_transition(TASK_ID, src, dst)
        message = str(raised.value)
        assert TASK_ID in message
        assert re.search(f"{src.value}.*{dst.value}", message), message  # both states, in order


def test_transition_accepts_plain_strings():
    assert can_transition("pending", "scheduled") is True
    assert can_transition("completed", "scheduled") is False
    with pytest.raises(InvalidTransition):
        check_transition(TASK_ID, "pending", "running")


@pytest.mark.parametrize(
    ("exit_code", "oom_killed", "stop_requested", "state", "error"),
    [
        (0, False, False, State.COMPLETED, None),
        (3, False, False, State.FAILED, "exited with code 3"),
        (137, False, False, State.FAILED, "exited with code 137"),
        (0, True, False, State.FAILED, "out of memory"),
        (137, True, False, State.FAILED, "out of memory"),
        (137, False, True, State.COMPLETED, None),
        (0, False, True, State.COMPLETED, None),
        (137, True, True, State.COMPLETED, None),
        (None, False, True, State.COMPLETED, None),
    ],
    ids=["exit-0", "exit-3", "exit-137", "oom-exit-0", "oom-exit-137", "stop-137", "stop-0",
         "stop-oom", "stop-no-code"],
)
def test_exit_outcome(exit_code, oom_killed, stop_requested, state, error):
    assert exit_outcome(exit_code, oom_killed, stop_requested) == (state, error)


@pytest.mark.parametrize(
    ("state", "terminal"),
    [(State.PENDING, False), (State.SCHEDULED, False), (State.RUNNING, False),
     (State.COMPLETED, True), (State.FAILED, True)],
)
def test_is_terminal(state, terminal):
    assert state.is_terminal is terminal


def test_state_is_a_string_enum():
    assert State("running") is State.RUNNING
    assert State.RUNNING == "running"
    assert str(State.FAILED) == "failed"
