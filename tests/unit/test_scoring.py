"""Each scoring function against hand-worked tables, feasibility and its reasons, and the
sampling of large clusters. Pure: nodes and tasks are built in memory."""
import random

import pytest

from node import DOWN, UP, Node
from scheduler import BinPack, Cluster, Epvm, RoundRobin, Spread, get_scheduler, sample_size
from scheduler import fit
from scheduler.feasible import explain, holds, why_not
from task import Task

G = 1 << 30
LIEB = 1.53960071783900203869


def node(name="n", cpu=4.0, memory=8 * G, disk=100 * G, used=(0.0, 0, 0), labels=None, **extra):
    return Node(name=name, address=f"{name}:1", state=extra.pop("state", UP), labels=labels or {},
                capacity={"cpu": cpu, "memory": memory, "disk": disk},
                allocated={"cpu": used[0], "memory": used[1], "disk": used[2]}, **extra)


def task(cpu=0.0, memory=0, disk=0, **extra):
    return Task(image="busybox", cpu=cpu, memory=memory, disk=disk, **extra)


# ----- Nomad's fit formulas: 10^free_cpu + 10^free_memory, free counted after placement


@pytest.mark.parametrize("used, asked, binpack, spread", [
    ((0.0, 0), (0.0, 0), 0.0, 18.0),                            # empty: 10 + 10 = 20
    ((1.0, 2 * G), (1.0, 2 * G), 13.675444679663, 4.324555320337),  # half: 2 * 10^0.5 = 6.3246
    ((3.0, 6 * G), (1.0, 2 * G), 18.0, 0.0),                    # filled exactly: 1 + 1 = 2
    ((3.0, 0), (1.0, 0), 9.0, 9.0),                             # cpu full, memory empty: 1 + 10
])
def test_binpack_and_spread_fit_by_hand(used, asked, binpack, spread):
    n, t = node(used=(used[0], used[1], 0)), task(cpu=asked[0], memory=asked[1])
    assert fit.binpack(t, n, Cluster([n])) == pytest.approx(binpack)
    assert fit.spread_fit(t, n) == pytest.approx(spread)


def test_binpack_prefers_the_fuller_node_and_spread_the_emptier():
    full, empty = node("full", used=(3.0, 6 * G, 0)), node("empty")
    cluster, t = Cluster([empty, full]), task(cpu=0.5, memory=G)
    assert BinPack().place(t, cluster).node is full
    assert Spread().place(t, cluster).node is empty


def test_spread_puts_replicas_of_a_service_apart_before_load():
    loaded, idle = node("loaded", used=(3.0, 6 * G, 0)), node("idle")
    mine = task(service="web")
    placed = {"idle": {"x": task(service="web")}, "loaded": {"y": task(service="db")}}
    cluster = Cluster([idle, loaded], placed)
    assert fit.spread(mine, idle, cluster) == pytest.approx(1.0 - 1)  # empty (18/18) minus one replica
    assert fit.spread(mine, loaded, cluster) == pytest.approx(fit.spread_fit(mine, loaded) / 18)
    assert Spread().place(mine, cluster).node is loaded
    assert Spread().place(task(), cluster).node is idle  # no service: load alone


# ----- E-PVM


def book_epvm_cost(t, n, count, cpu_load):
    """The book's Epvm.Score for one node (cpu load as the fraction the node reports)."""
    mem_now = n.allocated["memory"] / n.capacity["memory"]
    mem_new = (n.allocated["memory"] + t.memory) / n.capacity["memory"]
    jobs = LIEB ** ((count + 1) / 4.0) - LIEB ** (count / 4.0)
    mem_cost = LIEB ** mem_new + LIEB ** ((count + 1) / 4.0) - LIEB ** mem_now - LIEB ** (count / 4.0)
    cpu_cost = LIEB ** cpu_load + LIEB ** ((count + 1) / 4.0) - LIEB ** cpu_load - LIEB ** (count / 4.0)
    assert jobs == pytest.approx(cpu_cost)  # the cpu term is only the task-count term
    return mem_cost + cpu_cost


def test_epvm_counts_cpu_load_where_the_book_scores_equal():
    """Two nodes alike but for cpu load (0 of 4 cores vs 3 of 4), one task each, 2g of 8g
    memory; the task asks 1 core and 1g.

    jobs   = L^(2/4) - L^(1/4)                 = 0.126892 (per resource)
    memory = L^(3/8) - L^(2/8)                 = 0.061735
    cpu    = L^(1/4) - L^0                     = 0.113915 (idle)
             L^(4/4) - L^(3/4)                 = 0.157448 (busy)
    total  = 0.429433 (idle), 0.472966 (busy); the book: equal, its cpu term cancels."""
    idle, busy = node("idle", used=(0.0, 2 * G, 0)), node("busy", used=(3.0, 2 * G, 0))
    placed = {"idle": {"a": task()}, "busy": {"b": task()}}
    cluster, t = Cluster([busy, idle], placed), task(cpu=1.0, memory=G)
    assert fit.epvm_cost(t, idle, cluster) == pytest.approx(0.4294330669)
    assert fit.epvm_cost(t, busy, cluster) == pytest.approx(0.4729659852)
    assert book_epvm_cost(t, idle, 1, 0.0) == pytest.approx(book_epvm_cost(t, busy, 1, 0.75))
    assert Epvm().place(t, cluster).node is idle


@pytest.mark.parametrize("count, cost", [(0, 2 * (LIEB ** 0.25 - 1)), (3, 2 * (LIEB - LIEB ** 0.75))])
def test_epvm_task_count_term_for_a_task_that_requests_nothing(count, cost):
    n = node()
    cluster = Cluster([n], {"n": {str(i): task() for i in range(count)}})
    assert fit.epvm_cost(task(), n, cluster) == pytest.approx(cost)
    assert fit.epvm(task(), n, cluster) == pytest.approx(-cost)


# ----- feasibility and reasons


@pytest.mark.parametrize("change, reason", [
    ({"state": DOWN}, "down"),
    ({"eligible": False}, "ineligible"),
    ({"drain": {"started_at": "t", "deadline": None, "remaining": 1}}, "draining"),
    ({"engine": {"reachable": False}}, "engine unreachable"),
])
def test_a_node_that_is_not_usable_is_not_feasible(change, reason):
    n = node(**change)
    assert why_not(task(), n, Cluster([n])) == reason


@pytest.mark.parametrize("used, wanted, reason", [
    ((3.5, 0, 0), task(cpu=1.0), "lack cpu (needs 1.0)"),
    ((0.0, 7 * G, 0), task(memory=2 * G), "lack memory (needs 2g)"),
    ((0.0, 0, 99 * G), task(disk=2 * G), "lack disk (needs 2g)"),
    ((3.0, 6 * G, 0), task(cpu=1.0, memory=2 * G), None),  # exactly full fits
])
def test_requests_must_fit_in_capacity_minus_allocated(used, wanted, reason):
    n = node(used=used)
    assert why_not(wanted, n, Cluster([n])) == reason


@pytest.mark.parametrize("op, value, labels, ok", [
    ("==", "a", {"zone": "a"}, True), ("==", "a", {"zone": "b"}, False), ("==", "a", {}, False),
    ("!=", "a", {"zone": "b"}, True), ("!=", "a", {"zone": "a"}, False), ("!=", "a", {}, True),
    ("in", ["a", "b"], {"zone": "b"}, True), ("in", ["a", "b"], {"zone": "c"}, False), ("in", ["a"], {}, False),
    ("not_in", ["a", "b"], {"zone": "c"}, True), ("not_in", ["a"], {"zone": "a"}, False),
    ("not_in", ["a"], {}, True),
])
def test_constraint_ops(op, value, labels, ok):
    assert holds({"label": "zone", "op": op, "value": value}, labels) is ok


def test_fixed_host_ports_must_be_free_on_the_node():
    n = node()
    cluster = Cluster([n], {"n": {"x": task(ports={"80/tcp": 8080})}})
    assert why_not(task(ports={"81/tcp": 8080}), n, cluster) == "have port 8080/tcp taken"
    assert why_not(task(ports={"81/udp": 8080}), n, cluster) is None
    assert why_not(task(ports={"81/tcp": None}), n, cluster) is None


def test_explain_counts_each_reason():
    nodes = [node("a", used=(3.5, 0, 0)), node("b", used=(3.0, 0, 0)), node("c", used=(4.0, 0, 0)),
             node("d", labels={"zone": "b"}), node("e", state=DOWN)]
    t = task(cpu=2.0, constraints=[{"label": "zone", "op": "==", "value": "a"}])
    assert explain(t, nodes, Cluster(nodes)) == ("no node can take it: 3 lack cpu (needs 2.0), 1 down, "
                                                 "1 fails constraint zone==a")
    assert explain(t, [], Cluster([])) == "no node can take it: there are no nodes"
    placement = Spread().place(t, Cluster(nodes))
    assert placement.node is None and placement.reason.startswith("no node can take it: 3 lack cpu")


# ----- avoiding the node where the task was lost, round robin, sampling


def test_every_strategy_avoids_the_node_where_the_task_was_just_lost_if_it_can():
    a, b = node("a"), node("b", used=(1.0, G, 0))
    t = task()
    for name in ("spread", "binpack", "epvm", "round-robin"):
        assert get_scheduler(name).place(t, Cluster([a, b], avoid={t.id: "a"})).node is b, name
        assert get_scheduler(name).place(t, Cluster([a], avoid={t.id: "a"})).node is a, name


def test_round_robin_skips_nodes_without_room_and_keeps_rotating():
    nodes = [node("a"), node("b", used=(4.0, 0, 0)), node("c")]
    scheduler, t = RoundRobin(), task(cpu=1.0)
    assert [scheduler.place(t, Cluster(nodes)).node.name for _ in range(4)] == ["a", "c", "a", "c"]


def test_sample_size_is_nomads_log2_above_64_nodes():
    assert [sample_size(n) for n in (1, 10, 64, 65, 1000, 10000)] == [1, 10, 64, 7, 10, 14]


def test_a_large_cluster_is_sampled_and_only_feasible_nodes_are_scored():
    nodes = [node(f"n{i}", state=DOWN if i % 4 == 0 else UP) for i in range(1000)]
    scheduler = Spread(random.Random(7))
    candidates = scheduler.select_candidates(task(), Cluster(nodes))
    assert len(candidates) == 10 and all(n.state == UP for n in candidates)
    chosen = {scheduler.place(task(), Cluster(nodes)).node.name for _ in range(50)}
    assert len(chosen) > 10  # the random start spreads placements over the fleet


def test_placement_in_a_large_full_cluster_explains_every_node():
    nodes = [node(f"n{i}", used=(4.0, 0, 0)) for i in range(200)]
    assert Spread().place(task(cpu=1.0), Cluster(nodes)).reason == "no node can take it: 200 lack cpu (needs 1.0)"
