"""Tables and bars of the command line (cli.render), rendered to plain text."""
import io
from datetime import datetime, timezone

import pytest
from rich.console import Console

from cli.render import age, bar, human_bytes, nodes_table, task_detail, tasks_table

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)
TASK = {"id": "3f2a9c1e-0000-4000-8000-000000000001", "name": "web", "state": "failed", "image": "busybox",
        "command": ["sh", "-c", "exit 3"], "env": {"A": "1"}, "cpu": 0.5, "memory": 64 << 20, "disk": 0,
        "ports": {"8080/tcp": None}, "host_ports": {"8080/tcp": 32768}, "node": "127.0.0.1:5556",
        "container_id": "0123456789abcdef", "exit_code": 3, "error": "exited with code 3", "restart_count": 0,
        "created_at": "2026-01-02T11:58:00.000Z", "started_at": "2026-01-02T11:58:01.000Z", "finished_at": None}
NODE = {"name": "127.0.0.1:5556", "address": "127.0.0.1:5556", "state": "up", "cores": 2, "memory": 4 << 30,
        "disk": 100 << 30, "task_count": 3, "last_seen": "2026-01-02T11:59:59.000Z",
        "stats": {"cpu_percent": 50.0, "memory": {"percent": 25.0, "used": 1 << 30, "total": 4 << 30},
                  "disk": {"percent": 95.0, "used": 95 << 30, "total": 100 << 30}}}


def text(renderable, width: int = 200) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("created, shown", [
    ("2026-01-02T11:59:55.000Z", "5s"), ("2026-01-02T11:57:00Z", "3m"), ("2026-01-02T09:00:00.000Z", "3h"),
    ("2025-12-29T12:00:00.000Z", "4d"), ("2026-01-02T12:00:05.000Z", "0s"), (None, "-"), ("yesterday", "-"),
])
def test_age_is_the_largest_whole_unit(created, shown):
    assert age(created, NOW) == shown


@pytest.mark.parametrize("value, shown", [(0, "-"), (None, "-"), (512, "512B"), (64 << 20, "64M"),
                                          (int(1.5 * (1 << 30)), "1.5G"), (300 << 30, "300G"), (5 << 50, "5120T")])
def test_human_bytes(value, shown):
    assert human_bytes(value) == shown


@pytest.mark.parametrize("percent, shown", [(0, "░░░░░░░░   0%"), (50, "████░░░░  50%"), (100, "████████ 100%"),
                                            (250, "████████ 100%"), (None, "-")])
def test_bar_fills_in_proportion(percent, shown):
    assert str(bar(percent)) == shown


def test_bar_colors_by_threshold():
    def color(percent):
        return bar(percent).spans[0].style
    assert (color(10), color(75), color(95)) == ("green", "yellow", "red")


def test_tasks_table_has_one_row_per_task_with_a_short_id():
    lines = text(tasks_table([TASK, {**TASK, "id": "abcdef01-x", "state": "pending", "node": None,
                                     "exit_code": None}], NOW)).splitlines()
    assert [line.split() for line in lines] == [
        ["ID", "NAME", "STATE", "NODE", "AGE", "EXIT"],
        ["3f2a9c1e", "web", "failed", "127.0.0.1:5556", "2m", "3"],
        ["abcdef01", "web", "pending", "-", "2m", "-"],
    ]


def test_task_detail_shows_every_field():
    shown = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in text(task_detail(TASK, NOW)).splitlines()
             if not line.startswith("host ports") and not line.startswith("exit code")}
    assert shown["id"] == TASK["id"] and shown["command"] == "sh -c exit 3" and shown["memory"] == "64M"
    assert shown["container"] == "0123456789ab" and shown["error"] == "exited with code 3"
    assert shown["created"] == "2026-01-02T11:58:00.000Z (2m ago)" and shown["finished"] == "-"
    assert "host ports  8080/tcp=32768" in text(task_detail(TASK, NOW))


def test_task_detail_lists_fields_it_does_not_know_too():
    lines = text(task_detail({**TASK, "restart_policy": "no", "health_check": None}, NOW)).splitlines()
    assert lines[-2:] == ["restart policy  no", "health check    -"]


def test_nodes_table_shows_bars_and_sizes_when_wide():
    down = {**NODE, "name": "127.0.0.1:5557", "state": "down", "stats": {}}
    lines = text(nodes_table([NODE, down], NOW)).splitlines()
    assert lines[0].split() == ["NAME", "STATE", "SCHEDULING", "CPU", "MEMORY", "DISK", "TASKS"]
    assert lines[1].split() == ["127.0.0.1:5556", "up", "eligible", "████░░░░", "50%", "of", "2", "██░░░░░░", "25%", "1G/4G",
                                "████████", "95%", "95G/100G", "3"]
    assert lines[2].split() == ["127.0.0.1:5557", "down", "(seen", "1s", "ago)", "eligible", "-", "-", "-", "3"]


def test_nodes_table_shows_ineligible_and_draining_nodes():
    off = {**NODE, "name": "off", "eligible": False}
    draining = {**NODE, "name": "dr", "eligible": False, "drain": {"started_at": "", "deadline": None, "remaining": 2}}
    lines = text(nodes_table([off, draining], NOW)).splitlines()
    assert lines[1].split()[2] == "ineligible"
    assert lines[2].split()[2:5] == ["draining", "(2", "left)"]


def test_nodes_table_fits_80_columns_when_narrow():
    lines = text(nodes_table([NODE], NOW, wide=False), width=80).splitlines()
    assert lines[1].split() == ["127.0.0.1:5556", "up", "████░░░░", "50%", "██░░░░░░", "25%", "████████", "95%", "3"]
    assert max(len(line) for line in lines) <= 80
