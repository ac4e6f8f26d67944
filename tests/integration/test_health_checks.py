"""Health checks on the real engine, with busybox httpd (-vv logs every request it serves, so
the test sees each probe arrive): the port probed, the task's own interval, timeout, retries
and start period, and probes that run concurrently."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.integration.conftest import Cluster, post_task, wait_for, wait_state

pytestmark = pytest.mark.docker


def httpd(port: int, delay: float = 0) -> list[str]:
    wait = f"sleep {delay}; " if delay else ""
    return ["sh", "-c", f"{wait}mkdir -p /www && echo ok > /www/index.html && exec httpd -f -vv -p {port} -h /www"]


@pytest.fixture(scope="module")
def orca(tmp_path_factory, docker_client, test_image):
    cluster = Cluster(tmp_path_factory.mktemp("health"), docker_client)
    # The worker's defaults: a probe every 0.3 s, two failures in a row restart the task.
    yield cluster.start("all", workers=1, ORCA_HEALTH_INTERVAL="0.3", ORCA_HEALTH_FAILURES="2",
                        ORCA_RESTART_BACKOFF="0")
    cluster.close()


def run(orca, test_image, command: list[str], ports: dict, health_check, max_restarts: int = 1) -> str:
    task_id = str(uuid.uuid4())
    response = post_task(orca.manager_url, {"id": task_id, "image": test_image, "command": command, "ports": ports,
                                            "health_check": health_check, "max_restarts": max_restarts})
    assert response.status_code == 201, response.text
    return task_id


def probes_served(orca, task_id: str, path: str = "/index.html") -> int:
    text = requests.get(f"{orca.manager_url}/tasks/{task_id}/logs", timeout=10).text
    return text.count(f"url:{path}\n")


def stays_healthy(orca, task_id: str, probes: int = 4) -> None:
    """Wait until httpd has served `probes` probes, then the task must not have restarted."""
    wait_for(lambda: probes_served(orca, task_id) >= probes, timeout=30, what=f"{probes} probes served")
    task = requests.get(f"{orca.manager_url}/tasks/{task_id}", timeout=5).json()
    assert (task["state"], task["restart_count"]) == ("running", 0), task


def stop(orca, *task_ids: str) -> None:
    for task_id in task_ids:
        requests.delete(f"{orca.manager_url}/tasks/{task_id}", timeout=5)


def test_the_lowest_numbered_tcp_port_is_probed_not_the_first_in_dockers_order(orca, test_image):
    # Docker lists "10080/tcp" before "8080/tcp"; nothing listens on 10080.
    task_id = run(orca, test_image, httpd(8080), {"10080/tcp": None, "8080/tcp": None}, "/index.html")
    stays_healthy(orca, task_id)
    stop(orca, task_id)


def test_the_port_the_task_names_is_probed(orca, test_image):
    check = {"path": "/index.html", "port": 9090}
    task_id = run(orca, test_image, httpd(9090), {"8080/tcp": None, "9090/tcp": None}, check)
    stays_healthy(orca, task_id)
    stop(orca, task_id)


def test_no_restart_during_the_start_period(orca, test_image):
    # httpd starts after 3 s; one failure would restart it, but not while it starts up.
    check = {"path": "/index.html", "interval": 0.3, "retries": 1, "start_period": 60}
    task_id = run(orca, test_image, httpd(8080, delay=3), {"8080/tcp": None}, check)
    stays_healthy(orca, task_id)
    stop(orca, task_id)


def test_a_hanging_probe_never_delays_another_tasks_check(orca, test_image):
    # nc accepts one connection and never answers (its stdin never ends): that probe hangs for
    # its 60 s timeout.
    hanging = run(orca, test_image, ["sh", "-c", "sleep 1000 | nc -l -p 8080"], {"8080/tcp": None},
                  {"path": "/", "timeout": 60, "retries": 1000})
    wait_state(orca.manager_url, hanging, ("running",), timeout=30)
    sick = run(orca, test_image, httpd(8080), {"8080/tcp": None},
               {"path": "/missing", "interval": 0.3, "retries": 3}, max_restarts=0)
    # Three 404s in a row, 0.3 s apart, fail the task (no restarts left) long before 60 s.
    done = wait_state(orca.manager_url, sick, ("failed",), timeout=30)
    assert "404" in done["error"] and "/missing" in done["error"], done["error"]
    assert requests.get(f"{orca.manager_url}/tasks/{hanging}", timeout=5).json()["restart_count"] == 0
    stop(orca, hanging)


@pytest.mark.parametrize("health_check, field", [
    ({"path": "/x", "interval": 0}, "task.health_check.interval"),
    ({"path": "/x", "retries": 0}, "task.health_check.retries"),
    ({"path": "/x", "port": 9999}, "task.health_check.port"),
    ({"path": "/x", "start_period": "soon"}, "task.health_check.start_period"),
])
def test_bad_values_are_400_naming_the_field(orca, test_image, health_check, field):
    response = post_task(orca.manager_url, {"image": test_image, "ports": {"8080/tcp": None},
                                            "health_check": health_check})
    assert response.status_code == 400 and response.json()["error"].startswith(field), response.text
