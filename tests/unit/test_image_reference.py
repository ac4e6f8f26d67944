"""task.reference: image references normalized by Docker's grammar, and the allow-list rule."""
from __future__ import annotations

import pytest

from task.reference import ImageRef, InvalidReference, normalize, parse_pattern

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "f" * 64


@pytest.mark.parametrize("image, expected", [
    ("busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
    ("busybox:1.36", ImageRef("docker.io", "library/busybox", "1.36", None)),
    ("library/busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
    ("docker.io/library/busybox:1.36", ImageRef("docker.io", "library/busybox", "1.36", None)),
    ("docker.io/busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
    ("index.docker.io/busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
    (f"busybox@{DIGEST}", ImageRef("docker.io", "library/busybox", None, DIGEST)),
    (f"busybox:1.36@{DIGEST}", ImageRef("docker.io", "library/busybox", "1.36", DIGEST)),
    ("busyboxes/evil", ImageRef("docker.io", "busyboxes/evil", "latest", None)),
    ("busybox.attacker.example/miner", ImageRef("busybox.attacker.example", "miner", "latest", None)),
    ("localhost/app", ImageRef("localhost", "app", "latest", None)),
    ("localhost:5000/app:v1", ImageRef("localhost:5000", "app", "v1", None)),
    ("registry.example:5000/team/app:v1", ImageRef("registry.example:5000", "team/app", "v1", None)),
    (f"registry.example:5000/team/sub/app@{DIGEST}", ImageRef("registry.example:5000", "team/sub/app", None, DIGEST)),
    ("team/app", ImageRef("docker.io", "team/app", "latest", None)),
    ("team/a_b.c--d/e__f", ImageRef("docker.io", "team/a_b.c--d/e__f", "latest", None)),
    ("my.registry/app", ImageRef("my.registry", "app", "latest", None)),  # a dot: a registry host
])
def test_normalize_reads_references_as_docker_does(image, expected):
    assert normalize(image) == expected


@pytest.mark.parametrize("image", [
    "", "BusyBox", "busybox:", "busybox@", "busybox@sha256:abcd", f"busybox@sha256:{'A' * 64}",
    "-busybox", "busybox/", "/busybox", "evil/../busybox", "registry.example:port/app", "a" * 300,
    "busybox:-1", "my_app.v2/x", "busybox:" + "t" * 129, "registry.example:5000/", "a b",
])
def test_normalize_refuses_what_docker_refuses(image):
    with pytest.raises(InvalidReference):
        normalize(image)


ADMITS = [
    # (entry, image, admitted?)
    ("busybox", "busybox", True),
    ("busybox", "busybox:1.36", True),
    ("busybox", "library/busybox", True),
    ("busybox", "docker.io/library/busybox:1.36", True),
    ("busybox", f"busybox@{DIGEST}", True),
    ("busybox", "busybox.attacker.example/miner", False),
    ("busybox", "busyboxes/evil", False),
    ("busybox", "busyboxes", False),
    ("busybox", "evil.example/library/busybox", False),
    ("busybox", "team/busybox", False),
    ("busybox*", "busybox.attacker.example/miner", False),
    ("busybox*", "busyboxes/evil", False),
    ("busybox*", "busyboxes", True),
    ("docker.io/library/busybox", "busybox", True),
    ("library/busybox", "busybox:1.36", True),
    ("busybox:1.36", "busybox:1.36", True),
    ("busybox:1.36", "docker.io/library/busybox:1.36", True),
    ("busybox:1.36", "busybox", False),
    ("busybox:1.36", "busybox:1.37", False),
    ("busybox:1.36", f"busybox:1.36@{DIGEST}", False),  # the digest decides what runs
    ("busybox:1.*", "busybox:1.37", True),
    ("busybox:1.*", "busybox:2.0", False),
    (f"busybox@{DIGEST}", f"busybox@{DIGEST}", True),
    (f"busybox@{DIGEST}", f"busybox:any@{DIGEST}", True),
    (f"busybox@{DIGEST}", f"busybox@{OTHER_DIGEST}", False),
    (f"busybox@{DIGEST}", "busybox", False),
    ("registry.example:5000/team/*", "registry.example:5000/team/app:v1", True),
    ("registry.example:5000/team/*", f"registry.example:5000/team/app@{DIGEST}", True),
    ("registry.example:5000/team/*", "registry.example:5000/team/sub/app", True),
    ("registry.example:5000/team/*", "registry.example:5000/teamx/app", False),
    ("registry.example:5000/team/*", "registry.example:5000/team", False),
    ("registry.example:5000/team/*", "registry.example/team/app", False),
    ("registry.example:5000/team/*", "registry.example:50001/team/app", False),
    ("registry.example:5000/team/*", "team/app", False),
    ("registry.example:5000/*", "registry.example:5000/a/b/c:1", True),
    ("registry.example:5000/*", "registry.example:50000/a", False),
    ("registry.example:5000/team/app-*", "registry.example:5000/team/app-web", True),
    ("registry.example:5000/team/app-*", "registry.example:5000/team/app-web/x", False),
    ("*.example.com/app", "eu.example.com/app", True),
    ("*.example.com/app", "example.com.evil/app", False),
    ("localhost:5000/app", "localhost:5000/app:v3", True),
    ("*", "busybox", True),
    ("*", "team/app", False),
    ("*/*", "team/app", True),
    ("*/*", "registry.example:5000/team/app", False),
]


@pytest.mark.parametrize("entry, image, admitted", ADMITS)
def test_an_entry_admits_its_repository_and_nothing_else(entry, image, admitted):
    assert parse_pattern(entry).admits(normalize(image)) is admitted


@pytest.mark.parametrize("entry", ["BusyBox", "busybox@sha256:*", "busybox:", "-x", "registry:port/app", "a/"])
def test_a_malformed_entry_is_refused(entry):
    with pytest.raises(InvalidReference):
        parse_pattern(entry)
