"""Safe containers in task.validation: dangerous Docker fields are refused by name, images by allow-list (the table of entries is in test_image_reference.py)."""
import pytest

from task import ValidationError, parse_event
from task.errors import Forbidden
from task.validation import REFUSED_FIELDS, TASK_FIELDS, check_image_allowed

DANGEROUS = [
    ("privileged", True, "privileged containers control the host"),
    ("volumes", {"/": {"bind": "/host", "mode": "rw"}}, "host mounts"),
    ("mounts", [{"type": "bind", "source": "/", "target": "/host"}], "host mounts"),
    ("binds", ["/:/host"], "host mounts"),
    ("volumes_from", ["other"], "host mounts"),
    ("network_mode", "host", "host network"),
    ("network", "host", "host network"),
    ("pid_mode", "host", "PID namespace"),
    ("pid", "host", "PID namespace"),
    ("ipc_mode", "host", "host namespaces"),
    ("userns_mode", "host", "host namespaces"),
    ("cap_add", ["SYS_ADMIN"], "capabilities"),
    ("capabilities", ["ALL"], "capabilities"),
    ("devices", ["/dev/sda:/dev/sda:rwm"], "devices"),
    ("device_requests", [{"count": -1}], "devices"),
    ("security_opt", ["seccomp=unconfined"], "confinement"),
    ("sysctls", {"net.ipv4.ip_forward": "1"}, "kernel parameters"),
]


def task(**fields):
    return {"task": {"image": "busybox", **fields}}


@pytest.mark.parametrize(("field", "value", "reason"), DANGEROUS)
def test_dangerous_task_fields_are_refused_by_name_with_the_reason(field, value, reason):
    with pytest.raises(ValidationError) as raised:
        parse_event(task(**{field: value}))
    assert str(raised.value).startswith(f"task.{field} is not allowed: ")
    assert reason in str(raised.value)


@pytest.mark.parametrize("field", ["Privileged", "PRIVILEGED", "CapAdd", "cap-add", "Cap_Add", "NetworkMode",
                                   "network-mode", "PidMode", "SecurityOpt", "Devices"])
def test_refusal_ignores_case_dashes_and_underscores(field):
    with pytest.raises(ValidationError, match=f"^task.{field} is not allowed"):
        parse_event(task(**{field: "host"}))


@pytest.mark.parametrize("value", [False, None, [], {}, "", 0])
def test_even_a_harmless_looking_value_is_refused(value):
    """Refused fields are refused whatever their value: no silent acceptance of `false`."""
    with pytest.raises(ValidationError, match="task.privileged is not allowed"):
        parse_event(task(privileged=value))


def test_dangerous_fields_next_to_the_task_are_refused_too():
    with pytest.raises(ValidationError, match="^privileged is not allowed"):
        parse_event({"privileged": True, **task()})


def test_a_stop_event_with_a_dangerous_field_is_refused():
    with pytest.raises(ValidationError, match="task.cap_add is not allowed"):
        parse_event({"state": "completed", "task": {"id": "6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01", "cap_add": []}})


def test_other_unknown_fields_keep_the_generic_message():
    with pytest.raises(ValidationError, match="^unknown field task.user$"):
        parse_event(task(user="root"))


def test_no_refused_name_shadows_a_real_field():
    assert not {name.replace("_", "") for name in TASK_FIELDS} & set(REFUSED_FIELDS)


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("image", "patterns"), [
    ("anything", ()),
    ("busybox", ("busybox",)),
    ("busybox", ("busybox:latest",)),
    ("docker.io/library/busybox", ("busybox",)),
    ("busybox:1.36", ("busybox*",)),
    ("busybox:1.36", ("busybox:*",)),
    ("registry.local/team/app:2", ("nginx", "registry.local/*")),
    ("orca-test-busybox:latest", ("orca-test-*",)),
    (f"busybox@{DIGEST}", ("busybox",)),
    (f"busybox@{DIGEST}", (f"busybox@{DIGEST}",)),
])
def test_images_matching_a_pattern_are_allowed(image, patterns):
    check_image_allowed(image, patterns)


@pytest.mark.parametrize(("image", "patterns"), [
    ("nginx", ("busybox*",)),
    ("evil.example/busybox", ("busybox*",)),
    ("busybox.attacker.example/miner", ("busybox*",)),
    ("busyboxes/evil", ("busybox*",)),
    ("registry.local.evil.com/app", ("registry.local/*",)),
    ("BUSYBOX", ("busybox",)),
    ("busybox:1.36", ("busybox:latest",)),
    ("busybox", ("busybox:1.36",)),
    (f"busybox@{DIGEST}", ("busybox:latest",)),
    ("busybox@sha256:abcd", ("busybox",)),
])
def test_other_images_are_forbidden_naming_the_image(image, patterns):
    with pytest.raises(Forbidden) as raised:
        check_image_allowed(image, patterns)
    assert repr(image) in str(raised.value) and "ORCA_ALLOWED_IMAGES" in str(raised.value)
