"""The worker's pull against the real engine: a digest reference on a `host:port/` registry
reaches that registry (here a closed loopback port, so the engine's refusal names it)."""
from __future__ import annotations

import os

import pytest

from worker.runtime import DockerRuntime, RuntimeFailure

pytestmark = pytest.mark.docker

CLOSED_REGISTRY = "127.0.0.1:1"  # nothing listens on port 1: the engine's dial is refused at once
DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def runtime(docker_client):
    runtime = DockerRuntime("itest-pull", os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    yield runtime
    runtime.close()


@pytest.mark.parametrize("image", [f"{CLOSED_REGISTRY}/orca/missing@{DIGEST}",
                                   f"{CLOSED_REGISTRY}/orca/missing:v1"])
def test_a_registry_reference_is_pulled_from_that_registry(runtime, image):
    with pytest.raises(RuntimeFailure) as failure:
        runtime._pull(image)
    message = str(failure.value)
    assert f"image {image!r} is not available" in message
    assert f"{CLOSED_REGISTRY}/v2/" in message and "connection refused" in message, message
