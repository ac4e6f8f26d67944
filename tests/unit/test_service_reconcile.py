"""The services reconciler: hand-worked tables, then properties over random rollouts run
against a tiny model of a cluster (placements start one step later, stops end one step later)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.model import COMPLETED, PAUSED, ROLLED_BACK, RUNNING, Rollout, UpdatePolicy
from service.reconcile import Desired, NodeView, Replica, reconcile

FAST = UpdatePolicy(max_parallel=1, min_healthy_time=5, healthy_deadline=30)


def up(task_id, version=1, node="a", since=0.0, **kw):
    """A running replica healthy since `since` (placed then, unless told otherwise)."""
    kw.setdefault("created_at", since)
    return Replica(task_id, version, node=node, running=True, healthy_since=since, **kw)


def plan_for(replicas, n=3, version=1, rollout=None, update=FAST, now=100.0, **kw):
    return reconcile(Desired(n, version, update, rollout), replicas, now=now, **kw)


# ----- scaling (no rollout)


@pytest.mark.parametrize("have, want, placed, stopped", [
    (0, 3, 3, 0), (3, 3, 0, 0), (3, 9, 6, 0), (9, 2, 0, 7), (2, 0, 0, 2),
])
def test_scale_places_or_stops_the_difference(have, want, placed, stopped):
    replicas = [up(f"t{i}", node="abc"[i % 3]) for i in range(have)]
    plan = plan_for(replicas, n=want)
    assert (len(plan.place), len(plan.stop)) == (placed, stopped)
    assert set(plan.place) <= {1}


def test_scale_down_keeps_the_spread():
    replicas = [up(f"t{i}", node="abc"[i % 3]) for i in range(9)]
    plan = plan_for(replicas, n=3)
    left = [r.node for r in replicas if r.task_id not in plan.stop]
    assert sorted(left) == ["a", "b", "c"]


def test_scale_down_order_draining_then_unhealthy_then_fullest():
    nodes = [NodeView("a", load=0.9), NodeView("b", draining=True), NodeView("c", load=0.1), NodeView("d")]
    replicas = [up("on-a", node="a"), up("on-a2", node="a"), up("on-b", node="b"), up("on-c", node="c")]
    assert plan_for(replicas, n=3, nodes=nodes).stop == ("on-b",)
    sick = Replica("sick", 1, node="c", running=True, healthy_since=None)
    replicas = [up("on-a", node="a"), up("on-a2", node="a"), sick, up("on-c", node="c"), up("on-d", node="d")]
    assert plan_for(replicas, n=4, nodes=nodes).stop == ("sick",)
    assert plan_for(replicas, n=3, nodes=nodes).stop[1] in ("on-a", "on-a2")  # then the fullest node
    # a draining node's replica waits for an unhealthy one elsewhere to be healthy (start-first)
    replicas = [up("on-b", node="b"), sick, up("on-d", node="d")]
    assert plan_for(replicas, n=2, nodes=nodes).stop == ()


def test_unplaced_replicas_are_stopped_first():
    replicas = [up("t0"), up("t1"), Replica("waiting", 1, node=None)]
    assert plan_for(replicas, n=2).stop == ("waiting",)


def test_in_flight_placements_count_so_nothing_is_placed_twice():
    assert plan_for([up("t0")], n=3, in_flight=[1, 1]).place == ()
    assert plan_for([up("t0")], n=3, in_flight=[1]).place == (1,)


def test_stopping_and_ended_replicas_do_not_count_as_live():
    replicas = [up("t0"), up("t1", stopping=True), Replica("t2", 1, ended=True)]
    # stop-first: the stopping one must end before its slot is filled again
    assert plan_for(replicas, n=3).place == (1,)
    assert plan_for([up("t0"), Replica("t2", 1, ended=True)], n=3).place == (1, 1)


def test_a_failed_replica_is_replaced_after_the_delay():
    failed = Replica("t2", 1, ended=True, failed=True, ended_at=98.0)
    assert plan_for([up("t0"), up("t1"), failed], replace_delay=5).place == ()
    assert plan_for([up("t0"), up("t1"), failed], replace_delay=1).place == (1,)


def test_delete_stops_everything_and_is_gone_when_all_ended():
    replicas = [up("t0"), up("t1", stopping=True), Replica("t2", 1, ended=True)]
    plan = reconcile(Desired(3, 1, deleting=True), replicas)
    assert plan.stop == ("t0",) and not plan.gone
    plan = reconcile(Desired(3, 1, deleting=True), [Replica("t2", 1, ended=True)])
    assert plan.stop == () and plan.gone


# ----- rollouts


def rollout(state=RUNNING):
    return Rollout(1, 2, state, 0, 3)


def test_stop_first_stops_one_old_then_places_its_replacement():
    old = [up(f"o{i}", node="abc"[i]) for i in range(3)]
    plan = plan_for(old, version=2, rollout=rollout())
    assert plan.place == () and len(plan.stop) == 1
    stopping = [replace(old[0], stopping=True)] + old[1:]
    assert plan_for(stopping, version=2, rollout=rollout()) .place == ()
    ended = [replace(old[0], stopping=True, ended=True)] + old[1:]
    plan = plan_for(ended, version=2, rollout=rollout())
    assert plan.place == (2,) and plan.stop == ()


def test_stop_first_waits_for_the_new_replica_to_be_healthy_long_enough():
    replicas = [up("o1", node="b"), up("o2", node="c"), up("n0", version=2, since=97.0)]
    assert plan_for(replicas, version=2, rollout=rollout(), now=100).stop == ()
    plan = plan_for(replicas, version=2, rollout=rollout(), now=102)
    assert len(plan.stop) == 1 and plan.stop[0] in ("o1", "o2")
    assert plan.rollout.updated == 1 and plan.rollout.state == RUNNING


def test_start_first_places_before_stopping():
    old = [up(f"o{i}") for i in range(3)]
    plan = plan_for(old, version=2, rollout=rollout(), update=replace(FAST, order="start-first"))
    assert plan.place == (2,) and plan.stop == ()
    fresh = old + [up("n0", version=2, since=99.0)]
    plan = plan_for(fresh, version=2, rollout=rollout(), update=replace(FAST, order="start-first"))
    assert plan.place == () and plan.stop == ()
    plan = plan_for(fresh, version=2, rollout=rollout(), update=replace(FAST, order="start-first"), now=105)
    assert plan.place == () and len(plan.stop) == 1  # N + P exist until the stopped one has ended


def test_max_parallel_replaces_that_many_at_once():
    old = [up(f"o{i}") for i in range(5)]
    plan = plan_for(old, n=5, version=2, rollout=rollout(), update=replace(FAST, max_parallel=2))
    assert len(plan.stop) == 2


def test_rollout_completes_when_every_replica_is_new_and_updated():
    replicas = [up(f"n{i}", version=2, since=90.0) for i in range(3)]
    plan = plan_for(replicas, version=2, rollout=rollout())
    assert plan.rollout.state == COMPLETED and plan.rollout.updated == 3


def test_a_failed_new_replica_pauses_and_a_paused_rollout_changes_nothing():
    replicas = [up("o1"), up("o2"), Replica("n0", 2, node="a", ended=True, failed=True, ended_at=99.0)]
    plan = plan_for(replicas, version=2, rollout=rollout())
    assert plan.rollout.state == PAUSED and "failed" in plan.rollout.reason
    assert plan.stop == () and plan.version == 2
    # the failed one is replaced with the old version once its delay passed, nothing else
    plan = plan_for(replicas, version=2, rollout=plan.rollout, replace_delay=0)
    assert plan.place == (1,) and plan.stop == () and plan.rollout.state == PAUSED


def test_a_replica_not_healthy_by_the_deadline_fails_the_rollout():
    replicas = [up("o1"), up("o2"), Replica("n0", 2, node="a", running=True, created_at=60.0)]
    assert plan_for(replicas, version=2, rollout=rollout(), now=89).rollout.state == RUNNING
    assert plan_for(replicas, version=2, rollout=rollout(), now=90).rollout.state == PAUSED


def test_on_failure_rollback_goes_back_to_the_old_version_at_once():
    policy = replace(FAST, on_failure="rollback")
    replicas = [up("o1"), up("n0", version=2), Replica("n1", 2, ended=True, failed=True, ended_at=99.0)]
    plan = plan_for(replicas, version=2, rollout=rollout(), update=policy)
    assert plan.version == 1 and plan.rollout.state == ROLLED_BACK
    assert plan.stop == ("n0",)  # stop-first, at once
    # the slot of the failed one is filled at once; n0's only once it has ended (stop-first)
    assert plan_for([up("o1"), up("n0", version=2, stopping=True)], version=1,
                    rollout=plan.rollout, update=policy).place == (1,)


def test_a_lost_node_failure_is_not_the_versions_fault():
    replicas = [up("o1"), up("o2"), Replica("n0", 2, node="a", ended=True, failed=False, ended_at=99.0)]
    assert plan_for(replicas, version=2, rollout=rollout()).rollout.state == RUNNING


# ----- properties: a tiny cluster model


class Model:
    """Replicas start one step after placement and are healthy from then on (unless their
    version is bad: then they crash); stops end one step later. One step = 1 s."""

    def __init__(self, n, bad=()):
        self.now, self.bad, self.count = 0.0, set(bad), 0
        self.replicas = {f"o{i}": up(f"o{i}", node="abc"[i % 3], since=-100.0) for i in range(n)}

    def step(self, desired, delay=2.0):
        plan = reconcile(desired, list(self.replicas.values()), now=self.now, replace_delay=delay,
                         nodes=[NodeView(x) for x in "abc"])
        for task_id in plan.stop:
            self.replicas[task_id] = replace(self.replicas[task_id], stopping=True)
        self.now += 1.0
        for task_id, r in list(self.replicas.items()):
            if r.stopping and not r.ended:
                self.replicas[task_id] = replace(r, ended=True, running=False, healthy_since=None, ended_at=self.now)
            elif not r.ended and not r.running:
                if r.version in self.bad:
                    self.replicas[task_id] = replace(r, ended=True, failed=True, ended_at=self.now)
                else:
                    self.replicas[task_id] = replace(r, running=True, healthy_since=self.now)
        for version in plan.place:
            self.count += 1
            task_id = f"p{self.count}"
            self.replicas[task_id] = Replica(task_id, version, node="abc"[self.count % 3], created_at=self.now)
        return plan

    def running(self):
        return sum(1 for r in self.replicas.values() if r.running and not r.ended)

    def live(self):
        return [r for r in self.replicas.values() if r.live]


policies = st.builds(UpdatePolicy, max_parallel=st.integers(1, 4), min_healthy_time=st.sampled_from([0, 1, 3]),
                     healthy_deadline=st.sampled_from([10, 30]), on_failure=st.sampled_from(["pause", "rollback"]),
                     order=st.sampled_from(["stop-first", "start-first"]))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 8), policy=policies, bad=st.booleans())
def test_rollouts_keep_their_bounds_and_end_where_they_should(n, policy, bad):
    model = Model(n, bad={2} if bad else ())
    desired = Desired(n, 2, policy, Rollout(1, 2, RUNNING, 0, n))
    for _ in range(200):
        plan = model.step(desired)
        desired = replace(desired, version=plan.version, rollout=plan.rollout)
        if plan.rollout.state == RUNNING:
            if policy.order == "start-first":
                assert model.running() <= n + policy.max_parallel
            else:
                assert model.running() >= n - policy.max_parallel
        if plan.rollout.state in (COMPLETED, PAUSED, ROLLED_BACK) and len(model.live()) == n and not plan.place \
                and not plan.stop and all(r.running for r in model.live()):
            break
    live = model.live()
    assert len(live) == n
    if not bad or n == 0:
        assert desired.rollout.state == COMPLETED and all(r.version == 2 for r in live)
    elif policy.on_failure == "rollback":
        assert desired.rollout.state == ROLLED_BACK and desired.version == 1 and all(r.version == 1 for r in live)
    else:
        assert desired.rollout.state == PAUSED


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(0, 12), min_size=1, max_size=5))
def test_scaling_converges_to_the_desired_count(counts):
    model = Model(3)
    for n in counts:
        desired = Desired(n, 1)
        for _ in range(6):
            plan = model.step(desired)
        assert not plan.place and not plan.stop
        assert len(model.live()) == n and model.running() == n


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 8), policy=policies)
def test_a_paused_rollout_changes_nothing(n, policy):
    model = Model(n, bad={2})
    desired = Desired(n, 2, policy, Rollout(1, 2, PAUSED, 0, n, "failed"))
    before = {r.task_id for r in model.live()}
    for _ in range(5):
        plan = model.step(desired)
        assert plan.place == () and plan.stop == () and plan.rollout.state == PAUSED
    assert {r.task_id for r in model.live()} == before


def test_a_draining_nodes_replicas_are_replaced_first_then_stopped():
    nodes = [NodeView("a", draining=True), NodeView("b"), NodeView("c")]
    replicas = [up("t0", node="a"), up("t1", node="b"), up("t2", node="c")]
    plan = plan_for(replicas, nodes=nodes)
    assert plan.place == (1,) and plan.stop == ()  # start-first: t0 keeps serving meanwhile
    fresh = replicas + [up("t3", node="b", since=99.0)]
    assert plan_for(fresh, nodes=nodes).stop == ()  # not updated yet
    plan = plan_for(fresh, nodes=nodes, now=105)
    assert plan.stop == ("t0",) and plan.place == ()


def test_scale_down_with_a_draining_node_stops_its_replicas():
    nodes = [NodeView("a", draining=True), NodeView("b"), NodeView("c")]
    replicas = [up("t0", node="a"), up("t1", node="b"), up("t2", node="c")]
    plan = plan_for(replicas, n=2, nodes=nodes)
    assert plan.stop == ("t0",) and plan.place == ()
