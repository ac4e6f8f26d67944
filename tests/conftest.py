"""Fixtures shared by every test layer: the Docker engine and the test image."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

IMAGE = "orca-test-busybox:latest"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
IMAGE_DIR = Path(__file__).parent / "images" / "busybox"


def _unavailable(reason: str):
    """Under CI a missing engine is a failure, elsewhere a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Docker is required under CI: {reason}")
    pytest.skip(reason)


def _is_static(path: str) -> bool:
    """A dynamically linked ELF names its loader near the start; a static one does not."""
    with open(path, "rb") as binary:
        return b"ld-linux" not in binary.read(8192)


@pytest.fixture(scope="session")
def docker_client():
    """A Docker SDK client for the local engine (explicit socket: no CLI context)."""
    import docker

    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=60)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no engine
        _unavailable(f"Docker engine unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client) -> str:
    """Build (once per run) a FROM-scratch image holding the static busybox; return its tag."""
    busybox = next((p for p in BUSYBOX_PATHS if os.path.exists(p) and _is_static(p)), None)
    if busybox is None:
        _unavailable("static busybox not found: apt-get install busybox-static")
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(IMAGE_DIR / "Dockerfile", context)
        shutil.copy(busybox, Path(context) / "busybox")
        docker_client.images.build(path=context, tag=IMAGE, rm=True)
    return IMAGE


# ----- PostgreSQL (several managers): a server started by .ci/host-setup on 127.0.0.1

PG_ADMIN_URL = os.environ.get("ORCA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:54329/postgres")


def _pg_unavailable(reason: str):
    """Under CI a missing PostgreSQL is a failure (host-setup starts one), elsewhere a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"{reason} (run .ci/host-setup)")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the test server; skip (fail under CI) when it does not answer."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        _pg_unavailable(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(exc).strip().splitlines()[0]}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_database(pg_server):
    """A fresh database of this test's own; its URL. Dropped afterwards (connections ended)."""
    import uuid

    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"orca_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(pg_server)._replace(path=f"/{name}"))
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
