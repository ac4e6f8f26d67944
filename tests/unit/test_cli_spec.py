"""`orca run`'s file and flags -> task event (cli.spec): values reach the manager as given."""
import pytest

from cli.spec import SpecError, build_event, load_event, number, parse_env, parse_ports, size, split_arguments


@pytest.mark.parametrize("raw, value", [("2", 2), ("0.5", 0.5), ("-1", -1), ("abc", "abc"), ("", "")])
def test_number_converts_what_reads_as_a_number_and_passes_the_rest_on(raw, value):
    assert number(raw) == value and type(number(raw)) is type(value)


@pytest.mark.parametrize("raw, value", [("67108864", 67108864), ("-1", -1), ("64m", "64m"), ("1.5g", "1.5g")])
def test_size_converts_plain_integers_only(raw, value):
    assert size(raw) == value


def test_env_pairs_split_at_the_first_equals_sign():
    assert parse_env(("A=1", "B=x=y", "EMPTY=")) == {"A": "1", "B": "x=y", "EMPTY": ""}


@pytest.mark.parametrize("pair", ["NOVALUE", "=value"])
def test_env_pairs_without_a_name_or_equals_sign_are_refused(pair):
    with pytest.raises(SpecError, match="NAME=VALUE"):
        parse_env((pair,))


def test_ports_map_container_ports_to_host_ports_or_any():
    assert parse_ports(("8080/tcp", "9000:53/udp", "x:1/tcp")) == {"8080/tcp": None, "53/udp": 9000, "1/tcp": "x"}


def test_flags_build_a_whole_event():
    event = build_event(None, image="busybox", name="web", env=("A=1",), cpu="0.5", memory="64m",
                        ports=("8080/tcp",), command=("sh", "-c", "echo hi"))
    assert event == {"task": {"image": "busybox", "name": "web", "env": {"A": "1"}, "cpu": 0.5, "memory": "64m",
                              "ports": {"8080/tcp": None}, "command": ["sh", "-c", "echo hi"]}}


def test_flags_that_are_not_given_are_not_sent():
    assert build_event(None, image="busybox") == {"task": {"image": "busybox"}}


def test_flags_lay_over_the_file_and_add_to_its_env_and_ports():
    base = {"state": "running", "task": {"image": "a", "name": "file", "env": {"A": "1", "B": "1"},
                                         "ports": {"80/tcp": None}, "command": ["true"], "memory": 0}}
    event = build_event(base, name="flag", env=("B=2",), ports=("81/tcp",), memory="64m")
    assert event == {"state": "running", "task": {"image": "a", "name": "flag", "env": {"A": "1", "B": "2"},
                                                  "ports": {"80/tcp": None, "81/tcp": None}, "command": ["true"],
                                                  "memory": "64m"}}
    assert base["task"]["name"] == "file"  # the caller's dict is left alone


def test_a_command_replaces_the_files():
    assert build_event({"task": {"image": "a", "command": ["true"]}}, command=("false",))["task"]["command"] == ["false"]


def test_an_image_is_needed_from_a_flag_or_the_file():
    with pytest.raises(SpecError, match="--image"):
        build_event(None, name="x")
    with pytest.raises(SpecError, match="must be a JSON object"):
        build_event({"task": "busybox"})


@pytest.mark.parametrize("text, event", [
    ('{"image": "busybox"}', {"task": {"image": "busybox"}}),
    ('{"state": "running", "task": {"image": "busybox"}}', {"state": "running", "task": {"image": "busybox"}}),
])
def test_a_file_holds_a_task_or_a_task_event(text, event):
    assert load_event(text, "task.json") == event


@pytest.mark.parametrize("text, message", [("{oops", "task.json is not valid JSON"),
                                           ("[1]", "task.json must hold a JSON object")])
def test_a_bad_file_is_refused_naming_it(text, message):
    with pytest.raises(SpecError, match=message):
        load_event(text, "task.json")


@pytest.mark.parametrize("image, from_file, args, expected", [
    (None, False, ("busybox", "sh", "-c", "echo hi"), ("busybox", ("sh", "-c", "echo hi"))),
    (None, False, ("busybox",), ("busybox", ())),
    (None, False, ("busybox", "--", "ls", "--"), ("busybox", ("ls", "--"))),
    (None, False, (), (None, ())),
    ("busybox", False, ("sh", "-c", "x"), ("busybox", ("sh", "-c", "x"))),
    (None, True, ("sh", "-c", "x"), (None, ("sh", "-c", "x"))),
])
def test_split_arguments_reads_them_as_docker_run_does(image, from_file, args, expected):
    assert split_arguments(image, from_file, args) == expected
