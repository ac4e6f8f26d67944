"""Round-robin placement through scheduler.place, and the strategy registry."""
import pytest

from node import DOWN, UP, Node
from scheduler import RoundRobin, get_scheduler, place
from task import Task


def nodes(*names, down=()):
    return [Node(name=n, address=f"{n}:1", state=DOWN if n in down else UP) for n in names]


def picks(scheduler, node_list, count):
    task = Task(image="busybox")
    return [chosen.name if (chosen := place(scheduler, task, node_list)) else None for _ in range(count)]


def test_starts_with_the_first_node():
    assert place(RoundRobin(), Task(image="busybox"), nodes("a", "b", "c")).name == "a"


def test_cycles_through_three_nodes():
    assert picks(RoundRobin(), nodes("a", "b", "c"), 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_skips_a_node_that_is_down_and_resumes_when_it_returns():
    scheduler, cluster = RoundRobin(), nodes("a", "b", "c")
    assert picks(scheduler, cluster, 1) == ["a"]
    cluster[1].state = DOWN
    assert picks(scheduler, cluster, 3) == ["c", "a", "c"]
    cluster[1].state = UP
    assert picks(scheduler, cluster, 4) == ["a", "b", "c", "a"]


def test_first_node_down_from_the_start():
    assert picks(RoundRobin(), nodes("a", "b", "c", down={"a"}), 4) == ["b", "c", "b", "c"]


def test_single_node_up_gets_everything():
    assert picks(RoundRobin(), nodes("a", "b", "c", down={"a", "c"}), 3) == ["b", "b", "b"]


def test_returns_none_when_no_node_is_up():
    assert place(RoundRobin(), Task(image="busybox"), nodes("a", "b", down={"a", "b"})) is None


def test_returns_none_without_nodes():
    assert place(RoundRobin(), Task(image="busybox"), []) is None


def test_each_scheduler_has_its_own_rotation():
    cluster = nodes("a", "b")
    first, second = RoundRobin(), RoundRobin()
    assert picks(first, cluster, 1) == ["a"]
    assert picks(second, cluster, 1) == ["a"]
    assert picks(first, cluster, 1) == ["b"]


def test_get_scheduler_by_name():
    assert isinstance(get_scheduler("round-robin"), RoundRobin)
    assert get_scheduler("round-robin") is not get_scheduler("round-robin")


def test_get_scheduler_unknown_name_names_the_choices():
    with pytest.raises(ValueError) as raised:
        get_scheduler("best-fit")
    assert "best-fit" in str(raised.value)
    assert "round-robin" in str(raised.value)
