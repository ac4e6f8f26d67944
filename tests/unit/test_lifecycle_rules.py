"""The lifecycle rules (task/lifecycle.py), worked by hand: report ordering, the next step,
placements, lost workers and exits. Tables, plus a property: no report sequence revives a
finished task or moves a task along an edge the table forbids."""
import pytest
from hypothesis import given, strategies as st

from task import InvalidTransition, State, Task, TRANSITIONS
from task import lifecycle
from task.lifecycle import Action, Exit, LostOutcome, Report, Verdict

ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"


def task(state=State.RUNNING, node="w1", attempt=2, version=100, desired="running", **fields) -> Task:
    return Task(id=ID, image="busybox", state=state, node=node, attempt=attempt, version=version,
                desired_state=desired, **fields)


def report(state=State.RUNNING, attempt=2, version=101, container="c1") -> Report:
    return Report(task_id=ID, attempt=attempt, version=version, state=state, container_id=container)


@pytest.mark.parametrize(("held", "node", "got", "verdict"), [
    (task(), "w1", report(), Verdict.APPLY),
    (task(), "w1", report(version=100), Verdict.IGNORE),  # not newer: a late POST answer
    (task(), "w1", report(version=99, state=State.SCHEDULED), Verdict.IGNORE),  # no roll back
    (task(), "w2", report(), Verdict.STALE),  # another node's copy
    (task(), "w1", report(attempt=1), Verdict.STALE),  # an older attempt still running
    (task(), "w1", report(attempt=1, state=State.COMPLETED, container=None), Verdict.IGNORE),  # nothing left
    (task(), "w1", report(attempt=1, state=State.FAILED, container="c0"), Verdict.STALE),  # its container
    (task(state=State.FAILED), "w1", report(version=500), Verdict.STALE),  # terminal is final
    (task(state=State.FAILED), "w1", report(version=500, state=State.COMPLETED), Verdict.IGNORE),
    (task(state=State.COMPLETED), "w1", report(version=500, state=State.SCHEDULED), Verdict.STALE),
], ids=["newer", "same-version", "older", "other-node", "older-attempt", "older-attempt-gone",
        "older-attempt-container", "failed-stays-failed", "failed-never-completed", "completed-stays"])
def test_judge(held, node, got, verdict):
    assert lifecycle.judge(held, node, got) is verdict


def test_apply_takes_the_observed_fields_and_version():
    held = task(state=State.SCHEDULED)
    lifecycle.apply_report(held, Report(task_id=ID, attempt=2, version=150, state=State.RUNNING,
                                        container_id="c9", host_ports={"80/tcp": 3000}, restart_count=1))
    assert (held.state, held.version, held.container_id, held.host_ports, held.restart_count) == \
        (State.RUNNING, 150, "c9", {"80/tcp": 3000}, 1)


def test_apply_refuses_an_edge_the_table_forbids():
    with pytest.raises(InvalidTransition):
        lifecycle.apply_report(task(state=State.RUNNING), report(state=State.PENDING))


@pytest.mark.parametrize(("held", "unsent", "action"), [
    (task(state=State.PENDING, node=None, attempt=0), False, Action.PLACE),
    (task(state=State.SCHEDULED, node=None), False, Action.PLACE),  # moving off a lost worker
    (task(state=State.SCHEDULED), True, Action.SEND_RUN),
    (task(state=State.SCHEDULED), False, Action.NONE),
    (task(state=State.PENDING, node=None, desired="stopped"), False, Action.CANCEL),
    (task(state=State.RUNNING, desired="stopped"), False, Action.SEND_STOP),
    (task(state=State.SCHEDULED, desired="stopped"), True, Action.SEND_STOP),  # never a run once stopped
    (task(state=State.COMPLETED, desired="stopped"), False, Action.NONE),
    (task(state=State.FAILED), True, Action.NONE),
])
def test_next_action(held, unsent, action):
    assert lifecycle.next_action(held, unsent) is action


def test_a_placement_is_a_new_attempt_with_nothing_observed_yet():
    held = task(state=State.SCHEDULED, node=None, container_id="old", exit_code=1)
    lifecycle.place(held, "w3")
    assert (held.attempt, held.node, held.state, held.version, held.container_id, held.exit_code) == \
        (3, "w3", State.SCHEDULED, 0, None, None)


@pytest.mark.parametrize(("held", "cut_off_for", "outcome", "state"), [
    (task(desired="stopped"), 30.0, LostOutcome.COMPLETE, State.COMPLETED),
    (task(desired="stopped", state=State.SCHEDULED), 30.0, LostOutcome.COMPLETE, State.FAILED),
    (task(restart_policy="no"), 30.0, LostOutcome.FAIL, State.FAILED),
    (task(restart_count=3, max_restarts=3), 30.0, LostOutcome.FAIL, State.FAILED),
    (task(), 30.0, LostOutcome.MOVE, State.SCHEDULED),
    (task(stop_after_disconnect=60.0), 30.0, LostOutcome.WAIT, State.RUNNING),
    (task(stop_after_disconnect=60.0), 74.0, LostOutcome.WAIT, State.RUNNING),  # the margin (15 s)
    (task(stop_after_disconnect=60.0), 75.0, LostOutcome.MOVE, State.SCHEDULED),
])
def test_on_node_lost(held, cut_off_for, outcome, state):
    assert lifecycle.on_node_lost(held, "w1", cut_off_for, margin=15.0) is outcome
    assert held.state is state
    if outcome is LostOutcome.MOVE:
        assert held.node is None and held.restart_count == 1 and "w1 lost" in held.error
    if outcome is LostOutcome.FAIL:
        assert "worker w1 lost" in held.error


@pytest.mark.parametrize(("end", "stop", "policy", "state", "count"), [
    (Exit(exit_code=0), False, "on-failure", State.COMPLETED, 0),
    (Exit(exit_code=3), False, "on-failure", State.SCHEDULED, 1),
    (Exit(exit_code=3), False, "no", State.FAILED, 0),
    (Exit(exit_code=0), False, "always", State.SCHEDULED, 1),
    (Exit(exit_code=137), True, "always", State.COMPLETED, 0),  # a stop is never restarted
    (Exit(gone=True), False, "no", State.FAILED, 0),
])
def test_on_exit(end, stop, policy, state, count):
    held = task(restart_policy=policy)
    assert lifecycle.on_exit(held, end, stop, None, delay=1.0) is True
    assert (held.state, held.restart_count) == (state, count)


def test_on_exit_ignores_a_task_that_is_not_running():
    held = task(state=State.COMPLETED)
    assert lifecycle.on_exit(held, Exit(exit_code=1), False, None, 1.0) is False
    assert held.state is State.COMPLETED


REPORTS = st.builds(Report, task_id=st.just(ID), attempt=st.integers(1, 3), version=st.integers(0, 10),
                    state=st.sampled_from(list(State)), container_id=st.sampled_from([None, "c"]))


@given(st.lists(st.tuples(st.sampled_from(["w1", "w2"]), REPORTS), max_size=30))
def test_no_report_sequence_revives_a_finished_task_or_breaks_the_table(sequence):
    held = task(state=State.SCHEDULED, attempt=2, version=0)
    terminal_seen = None
    for node, got in sequence:
        before = held.state
        if lifecycle.judge(held, node, got) is Verdict.APPLY:
            try:
                lifecycle.apply_report(held, got)
            except InvalidTransition:
                assert held.state is before  # refused whole
            else:
                assert held.state in TRANSITIONS[before] and held.version == got.version
        if terminal_seen is not None:
            assert held.state is terminal_seen
        elif held.state.is_terminal:
            terminal_seen = held.state


def test_backoff_is_capped_without_computing_a_huge_power():
    from task import backoff_delay
    assert backoff_delay(10**12, base=1.0, cap=30.0) == 30.0  # 2 ** 10**12 would exhaust memory


def test_the_worker_refuses_an_absurd_restart_count_or_attempt():
    from task import ValidationError
    from task.wire import parse_order
    body = {"task": {"image": "busybox"}}
    assert parse_order({**body, "attempt": 7, "restart_count": 1001}).task.restart_count == 1001
    for bad in ({"restart_count": 1002}, {"attempt": 0}, {"attempt": 1 << 41}, {"attempt": True}):
        with pytest.raises(ValidationError):
            parse_order({**body, **bad})
