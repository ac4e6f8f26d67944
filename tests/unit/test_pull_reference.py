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


class FakeResponse:
    def __init__(self, status_code: int = 200, lines: tuple[bytes, ...] = ()) -> None:
        self.status_code = status_code
        self.lines = lines
        self.content = b"".join(lines)

    def iter_lines(self):
        return iter(self.lines)

    def close(self) -> None:
        pass


class FakeApi:
    """The engine's POST /images/create, recorded (no engine is touched)."""

    base_url = "http+docker://localhost"

    def __init__(self, response: FakeResponse | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.response = response or FakeResponse(200, (b'{"status":"Pulling"}',))
        self._auth_configs = None
        self.credstore_env = None

    def post(self, url: str, params=None, headers=None, stream=False, timeout=None):
        assert url.endswith("/images/create") and stream and timeout
        self.calls.append((params["fromImage"], params["tag"]))
        return self.response


class FakeDocker:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


def runtime_with(api: FakeApi) -> DockerRuntime:
    runtime = DockerRuntime("w-test", "unix:///nonexistent.sock")
    runtime._docker = FakeDocker(api)  # the client is created lazily: never touches an engine
    return runtime


@pytest.mark.parametrize("image, call", [
    (f"busybox@{DIGEST}", ("busybox", DIGEST)),
    (f"registry:5000/app@{DIGEST}", ("registry:5000/app", DIGEST)),
    ("registry:5000/team/app:v1", ("registry:5000/team/app", "v1")),
    ("busybox", ("busybox", "latest")),
])
def test_pull_passes_repository_and_tag_or_digest(image, call):
    api = FakeApi()
    runtime_with(api)._pull(image)
    assert api.calls == [call]


@pytest.mark.parametrize("response", [
    FakeResponse(404, (b'{"message":"pull access denied"}',)),
    FakeResponse(200, (b'{"status":"Pulling"}', b'{"error":"pull access denied"}')),
])
def test_a_failed_pull_names_the_image(response):
    with pytest.raises(RuntimeFailure, match=r"image 'nope:1' is not available: pull access denied"):
        runtime_with(FakeApi(response))._pull("nope:1")
