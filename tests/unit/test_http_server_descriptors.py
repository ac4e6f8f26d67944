"""Orca's HTTP server keeps serving in a process holding more than 1,024 descriptors, as a
manager following 1,000 workers does (a connection each): waitress' default loop uses
select(), which cannot watch a descriptor past 1023 and dies on the first one."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from flask import Flask

from common.http import Server

HELD = 1100
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HELD + 100:
        if hard != resource.RLIM_INFINITY and hard < HELD + 100:
            pytest.skip(f"RLIMIT_NOFILE is at most {hard}: cannot open {HELD} descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (HELD + 100, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(HELD)]
    yield held
    for fd in held:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_server_answers_on_descriptors_past_1023(many_descriptors):
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return {"ok": True}
    server = Server(app, "127.0.0.1", 0, threads=2)
    server.start()
    try:
        with requests.Session() as session:  # each answer comes over a socket numbered past 1100
            answers = [session.get(f"http://{server.address}/ping", timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(a.json() == {"ok": True} for a in answers)
    finally:
        server.close()


def test_orca_lifts_its_soft_descriptor_limit_to_the_hard_one():
    """main.raise_descriptor_limit(), run in a child started with a soft limit of 1,024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit is {hard}: nothing to lift")
    script = ("import resource, main; main.raise_descriptor_limit(); "
              "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    child = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) == hard
