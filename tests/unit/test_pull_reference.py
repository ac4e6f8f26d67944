"""worker.runtime.pull_reference and _pull: every form of image reference reaches the SDK's
`images.pull(repository, tag=...)` as Docker's own parser reads it (no engine needed)."""
from __future__ import annotations

import pytest

from worker.runtime import DockerRuntime, RuntimeFailure, pull_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("image, expected", [
    ("busybox", ("busybox", "latest")),
    ("busybox:1.36", ("busybox", "1.36")),
    (f"busybox@{DIGEST}", ("busybox", DIGEST)),
    (f"busybox:1.36@{DIGEST}", ("busybox", DIGEST)),
    ("library/busybox", ("library/busybox", "latest")),
    ("docker.io/library/busybox:1.36", ("docker.io/library/busybox", "1.36")),
    ("registry:5000/app", ("registry:5000/app", "latest")),
    ("registry:5000/team/app:v1", ("registry:5000/team/app", "v1")),
    (f"registry:5000/team/app@{DIGEST}", ("registry:5000/team/app", DIGEST)),
    (f"registry:5000/team/app:v1@{DIGEST}", ("registry:5000/team/app", DIGEST)),
    ("localhost:5000/app:v2", ("localhost:5000/app", "v2")),
    ("[::1]:5000/app:v2", ("[::1]:5000/app", "v2")),
])
def test_pull_reference_splits_every_form(image, expected):
    assert pull_reference(image) == expected


class FakeImages:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error = error

    def pull(self, repository: str, tag: str | None = None):
        self.calls.append((repository, tag))
        if self.error:
            raise self.error


class FakeDocker:
    def __init__(self, images: FakeImages) -> None:
        self.images = images


def runtime_with(images: FakeImages) -> DockerRuntime:
    runtime = DockerRuntime("w-test", "unix:///nonexistent.sock")
    runtime._docker = FakeDocker(images)  # the client is created lazily: never touches an engine
    return runtime


@pytest.mark.parametrize("image, call", [
    (f"busybox@{DIGEST}", ("busybox", DIGEST)),
    (f"registry:5000/app@{DIGEST}", ("registry:5000/app", DIGEST)),
    ("registry:5000/team/app:v1", ("registry:5000/team/app", "v1")),
    ("busybox", ("busybox", "latest")),
])
def test_pull_passes_repository_and_tag_or_digest(image, call):
    images = FakeImages()
    runtime_with(images)._pull(image)
    assert images.calls == [call]


def test_a_failed_pull_names_the_image():
    from docker.errors import APIError

    images = FakeImages(APIError("pull access denied"))
    with pytest.raises(RuntimeFailure, match=r"image 'nope:1' is not available"):
        runtime_with(images)._pull("nope:1")
