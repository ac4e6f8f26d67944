"""A database that fails while managers run: writes answer 503 (nothing acknowledged that is
not durable), the leader steps down when it cannot renew, and everything recovers by itself
when the database returns. Uses a PostgreSQL server of its own (stopped and started by the
test), so the shared test server is never touched."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests

from tests.conftest import _pg_unavailable
from tests.integration.conftest import free_ports, wait_for


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def own_server():
    """A private PostgreSQL (initdb + pg_ctl as `postgres`, under /tmp); yields (url, stop, start)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not bins or os.geteuid() != 0 or not shutil.which("runuser"):
        _pg_unavailable("a private PostgreSQL needs Debian's postgresql and root (runuser -u postgres)")
    pg_bin = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="orca-pg-outage-")
    shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), free_ports(1)
    _as_postgres(f"{pg_bin}/initdb", "-D", data, "-U", "postgres", "--auth=trust")

    def start() -> None:
        _as_postgres(f"{pg_bin}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "start",
                     "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1")

    def stop() -> None:
        _as_postgres(f"{pg_bin}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, start
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _post(url: str) -> int:
    body = {"state": "running", "task": {"id": str(uuid.uuid4()), "image": "busybox"}}
    try:
        return requests.post(f"{url}/tasks", json=body, timeout=20).status_code
    except requests.RequestException:
        return 0


def test_losing_the_database_refuses_writes_and_everything_recovers(cluster, own_server):
    url, stop, start = own_server
    closed = f"127.0.0.1:{free_ports(1)}"  # no worker: this is about the managers and the database
    managers = [cluster.start("manager", workers=0, ORCA_WORKERS=closed, ORCA_DATABASE_URL=url, ORCA_LEASE_TTL="2")
                for _ in range(2)]
    assert wait_for(lambda: _post(managers[1].manager_url) == 201, timeout=30, what="a first write")
    acknowledged = {t["id"] for t in requests.get(f"{managers[0].manager_url}/tasks", timeout=5).json()}
    stop()
    for manager in managers:
        assert _post(manager.manager_url) == 503  # never a 201 for what could not be written
    wait_for(lambda: any("stepping down" in m.log_path.read_text(errors="replace") for m in managers), timeout=30,
             what="the leader to step down")
    start()
    assert wait_for(lambda: _post(managers[0].manager_url) == 201, timeout=60, what="writes accepted again")
    view = wait_for(lambda: (v := requests.get(f"{managers[1].manager_url}/cluster", timeout=5)).ok and v.json(),
                    timeout=30, what="/cluster again")
    assert view["leader"] in {m.manager_url.removeprefix("http://") for m in managers} and view["term"] >= 2
    listed = {t["id"] for t in requests.get(f"{managers[0].manager_url}/tasks", timeout=5).json()}
    assert acknowledged <= listed
