"""The placement fields of the models: task constraints (validated), task.service (internal),
and the node's id, status, eligibility, drain, capacity, allocation and labels."""
import pytest

from node import Node
from task import Task, ValidationError, parse_event, parse_task
from task.model import SPEC_FIELDS


def test_constraints_parse_each_op():
    spec = {"image": "busybox", "constraints": [
        {"label": "zone", "op": "==", "value": "a"}, {"label": "disk", "op": "!=", "value": "hdd"},
        {"label": "rack", "op": "in", "value": ["r1", "r2"]}, {"label": "kernel/v", "op": "not_in", "value": ["4"]}]}
    task = parse_task(spec)
    assert [c["op"] for c in task.constraints] == ["==", "!=", "in", "not_in"]
    assert task.to_dict()["constraints"][2] == {"label": "rack", "op": "in", "value": ["r1", "r2"]}
    assert Task.from_dict(task.to_dict()).constraints == task.constraints


@pytest.mark.parametrize("constraints, named", [
    ({"label": "zone"}, "task.constraints must be a list"),
    ([{"label": "zone", "op": "~", "value": "a"}], "task.constraints[0].op must be one of"),
    ([{"label": "zone", "op": "=="}], "task.constraints[0].value is required"),
    ([{"op": "==", "value": "a"}], "task.constraints[0].label is required"),
    ([{"label": "", "op": "==", "value": "a"}], "task.constraints[0].label must be"),
    ([{"label": "zone", "op": "in", "value": "a"}], "task.constraints[0].value must be a list"),
    ([{"label": "zone", "op": "in", "value": []}], "task.constraints[0].value must be a list"),
    ([{"label": "zone", "op": "==", "value": ["a"]}], "task.constraints[0].value must be a string"),
    ([{"label": "zone", "op": "in", "value": ["a", 3]}], "task.constraints[0].value[1] must be a string"),
    ([{"label": "zone", "op": "==", "value": "a", "x": 1}], "unknown field task.constraints[0].x"),
    ([{"label": "zone", "op": "==", "value": "a"}, 5], "task.constraints[1] must be a JSON object"),
])
def test_bad_constraints_are_refused_naming_the_field(constraints, named):
    with pytest.raises(ValidationError) as err:
        parse_task({"image": "busybox", "constraints": constraints})
    assert named in str(err.value)


def test_service_is_internal_not_settable_but_shown_and_kept():
    assert "service" not in SPEC_FIELDS
    with pytest.raises(ValidationError, match="unknown field task.service"):
        parse_event({"task": {"image": "busybox", "service": "web"}})
    task = Task(image="busybox", service="web")
    assert task.to_dict()["service"] == "web" and "service" not in task.spec_dict()
    assert Task.from_dict(task.to_dict()).service == "web"


def test_node_fields_have_defaults_and_status_aliases_state():
    node = Node(name="w", address="127.0.0.1:1")
    data = node.to_dict()
    assert data["status"] == data["state"] == "down"
    assert data["eligible"] is True and data["drain"] is None and data["labels"] == {}
    assert data["capacity"] == data["allocated"] == {"cpu": 0.0, "memory": 0, "disk": 0}
    assert data["id"] and data["id"] != Node(name="w", address="127.0.0.1:1").id
    node.state = "up"
    assert node.to_dict()["status"] == "up" and node.status == "up"


# ----- the worker's node settings


def test_node_capacity_labels_and_manager_urls_from_the_environment():
    from common.config import from_env

    config = from_env({"ORCA_NODE_CAPACITY": "cpu=4, memory=8g,disk=100g", "ORCA_NODE_LABELS": "zone=a,disk=ssd",
                       "ORCA_MANAGER_URL": "http://10.0.0.1:5555/, http://10.0.0.2:5555"})
    assert dict(config.node_capacity) == {"cpu": 4.0, "memory": 8 << 30, "disk": 100 << 30}
    assert dict(config.node_labels) == {"zone": "a", "disk": "ssd"}
    assert config.manager_urls == ("http://10.0.0.1:5555", "http://10.0.0.2:5555")
    assert dict(from_env({"ORCA_NODE_CAPACITY": "cpu=0.5"}).node_capacity) == {"cpu": 0.5, "memory": 0, "disk": 0}
    assert from_env({}).node_capacity == () and from_env({}).manager_urls == ()


@pytest.mark.parametrize("name, value, named", [
    ("ORCA_NODE_CAPACITY", "cpu=x", "cpu must be a number"),
    ("ORCA_NODE_CAPACITY", "gpu=1", "unknown field ORCA_NODE_CAPACITY.gpu"),
    ("ORCA_NODE_CAPACITY", "memory=lots", "ORCA_NODE_CAPACITY.memory"),
    ("ORCA_NODE_LABELS", "zone", "must be key=value"),
    ("ORCA_NODE_LABELS", "zone=a b", "ORCA_NODE_LABELS.zone"),
    ("ORCA_MANAGER_URL", "10.0.0.1:5555", "ORCA_MANAGER_URL must look like"),
])
def test_bad_node_settings_name_the_variable(name, value, named):
    from common.config import ConfigError, from_env

    with pytest.raises(ConfigError, match=named):
        from_env({name: value})


def test_the_worker_keeps_its_node_id_in_its_data_dir(tmp_path):
    from worker.join import node_id

    first = node_id(str(tmp_path), "127.0.0.1:5556")
    assert node_id(str(tmp_path), "127.0.0.1:5556") == first
    assert node_id(str(tmp_path), "other") != first
    assert (tmp_path / "node-127.0.0.1_5556.id").read_text().strip() == first
