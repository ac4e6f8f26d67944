"""The command line with several managers: ORCA_MANAGER_URL lists them and the client fails
over; `orca managers` shows GET /cluster."""
from __future__ import annotations

import pytest

from cli.client import ManagerClient, ManagerUnreachable, default_url
from tests.unit.test_cli_client import closed_url, fake, invoke  # noqa: F401 - fixtures

VIEW = {"leader": "127.0.0.1:8081", "term": 4, "managers": [
    {"name": "127.0.0.1:8080", "address": "127.0.0.1:8080", "role": "follower", "last_seen": "2026-12-01T15:47:51.656Z"},
    {"name": "127.0.0.1:8081", "address": "127.0.0.1:8081", "role": "leader", "last_seen": "2026-12-01T15:47:51.700Z"}]}


def test_orca_manager_url_may_list_several_managers():
    assert default_url({"ORCA_MANAGER_URL": "10.0.0.5:80, http://10.0.0.6:80/,"}) == "http://10.0.0.5:80,http://10.0.0.6:80"


def test_the_client_fails_over_to_the_next_manager_and_keeps_it(fake, closed_url):
    fake.routes[("GET", "/tasks")] = (200, [])
    fake.routes[("POST", "/tasks")] = (201, {"id": "t1"})
    client = ManagerClient(f"{closed_url},{fake.url}")
    assert client.tasks() == []
    assert client.url == fake.url  # the manager that answered is asked first from now on
    assert client.submit({"task": {"image": "x"}}) == {"id": "t1"}
    assert [r[0] for r in fake.requests] == ["GET", "POST"]


def test_no_manager_answers_names_each(closed_url):
    with pytest.raises(ManagerUnreachable, match="cannot reach any manager: .*connection refused; .*connection refused"):
        ManagerClient(f"{closed_url},{closed_url}").tasks()


def test_orca_managers_shows_the_leader_and_every_manager(fake, closed_url):
    fake.routes[("GET", "/cluster")] = (200, VIEW)
    result = invoke(f"{closed_url},{fake.url}", "managers")
    assert result.exit_code == 0, result.output
    assert "leader: 127.0.0.1:8081, term 4" in result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["127.0.0.1:8080", "127.0.0.1:8080", "follower"] == lines[2][:3]
    assert ["127.0.0.1:8081", "127.0.0.1:8081", "leader"] == lines[3][:3]
    as_json = invoke(fake, "managers", "--json")
    assert '"term": 4' in as_json.output


def test_orca_managers_refuses_what_is_not_a_manager(fake):
    fake.routes[("GET", "/cluster")] = (200, {"hello": "world"})
    result = invoke(fake, "managers")
    assert result.exit_code == 1 and "is it an Orca manager" in result.output
