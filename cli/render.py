"""Rich renderables for tasks and nodes (pure: they take data and a clock, print nothing)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.table import Table
from rich.text import Text

STATE_STYLES = {"pending": "dim", "scheduled": "cyan", "running": "green", "completed": "blue", "failed": "red",
                "up": "green", "down": "red"}
SHORT_ID = 8
BAR_WIDTH = 8
WIDE = 120  # terminal columns from which `orca nodes` shows scheduling and sizes too


def parse_time(value: str | None) -> datetime | None:
    """Parse the API's ISO 8601 UTC time ("...Z"); None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def age(value: str | None, now: datetime) -> str:
    """How long ago `value` was, in the largest whole unit: 5s, 3m, 2h, 4d ('-' when unknown)."""
    then = parse_time(value)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(value: Any) -> str:
    """Bytes as a short size with a binary unit: 512B, 64M, 1.5G ('-' for 0 or unknown)."""
    if not isinstance(value, (int, float)) or value <= 0:
        return "-"
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            break
        size /= 1024
    text = f"{size:.1f}".removesuffix(".0") if size < 10 and unit != "B" else f"{size:.0f}"
    return f"{text}{unit}"


def state_text(state: Any) -> Text:
    """A state name in its color."""
    return Text(str(state or "-"), style=STATE_STYLES.get(state, ""))


def bar(percent: Any, detail: str = "", width: int = BAR_WIDTH) -> Text:
    """A usage bar such as `███░░░░░░░  30% 1.2G/4G`: green, yellow from 70 %, red from 90 %."""
    if not isinstance(percent, (int, float)):
        return Text("-", style="dim")
    percent = min(100.0, max(0.0, float(percent)))
    filled = round(percent / 100 * width)
    style = "red" if percent >= 90 else "yellow" if percent >= 70 else "green"
    text = Text()
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {percent:3.0f}%")
    if detail:
        text.append(f" {detail}", style="dim")
    return text


def exit_text(task: dict[str, Any]) -> Text:
    """The exit code, red when non-zero ('-' while there is none)."""
    code = task.get("exit_code")
    if code is None:
        return Text("-", style="dim")
    return Text(str(code), style="red" if code else "")


def tasks_table(tasks: list[dict[str, Any]], now: datetime) -> Table:
    """One row per task: short id, name, state, node, age, exit code."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "STATE", "NODE", "AGE"):
        table.add_column(column, no_wrap=column != "NAME")
    table.add_column("EXIT", justify="right", no_wrap=True)
    for task in tasks:
        table.add_row(task["id"][:SHORT_ID], task.get("name") or "-", state_text(task.get("state")),
                      task.get("node") or "-", age(task.get("created_at"), now), exit_text(task))
    return table


def _mapping(value: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'any' if v is None else v}" for k, v in value.items()) or "-"


# Fields task_detail shows in its own way; any other field is listed after them as it comes.
DETAILED = frozenset({"id", "name", "state", "image", "command", "env", "cpu", "memory", "disk", "ports", "host_ports",
                      "node", "container_id", "exit_code", "error", "restart_count", "created_at", "started_at",
                      "finished_at"})


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return _mapping(value)
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def task_detail(task: dict[str, Any], now: datetime) -> Text:
    """Every field of one task, one `label  value` line each, with times shown as ages too."""
    rows: list[tuple[str, Any]] = [
        ("id", task["id"]), ("name", task.get("name")), ("state", state_text(task.get("state"))),
        ("image", task.get("image")), ("command", " ".join(task.get("command") or []) or "(image default)"),
        ("env", _mapping(task.get("env") or {})),
        ("cpu", task.get("cpu") or "-"), ("memory", human_bytes(task.get("memory"))),
        ("disk", human_bytes(task.get("disk"))), ("ports", _mapping(task.get("ports") or {})),
        ("host ports", _mapping(task.get("host_ports") or {})), ("node", task.get("node") or "-"),
        ("container", (task.get("container_id") or "-")[:12]), ("exit code", exit_text(task)),
        ("error", Text(task.get("error") or "-", style="red" if task.get("error") else "dim")),
        ("restarts", task.get("restart_count", 0)),
    ]
    for label in ("created", "started", "finished"):
        value = task.get(f"{label}_at")
        rows.append((label, f"{value} ({age(value, now)} ago)" if value else "-"))
    rows += [(key.replace("_", " "), _plain(task[key])) for key in task if key not in DETAILED]
    width = max(len(label) for label, _ in rows) + 2
    lines = [Text(label.ljust(width), style="bold") + (value if isinstance(value, Text) else Text(str(value)))
             for label, value in rows]
    return Text("\n").join(lines)


def _used(usage: dict[str, Any]) -> str:
    return f"{human_bytes(usage.get('used'))}/{human_bytes(usage.get('total'))}"


def _scheduling(node: dict[str, Any]) -> Text:
    drain = node.get("drain")
    if drain:
        return Text(f"draining ({drain.get('remaining', 0)} left)", style="yellow")
    return Text("eligible") if node.get("eligible", True) else Text("ineligible", style="dim")


def nodes_table(nodes: list[dict[str, Any]], now: datetime, wide: bool = True) -> Table:
    """One row per worker: state, CPU, memory and disk use as bars, task count.

    `wide` adds the scheduling (eligible, ineligible, draining), the cores and the used/total
    sizes (about 115 columns instead of 75).
    """
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "STATE", *(("SCHEDULING",) if wide else ()), "CPU", "MEMORY", "DISK"):
        table.add_column(column, no_wrap=True)
    table.add_column("TASKS", justify="right", no_wrap=True)
    for node in nodes:
        stats = node.get("stats") or {}
        memory, disk = stats.get("memory") or {}, stats.get("disk") or {}
        state = state_text(node.get("state"))
        if node.get("state") != "up" and node.get("last_seen"):
            state.append(f" (seen {age(node['last_seen'], now)} ago)", style="dim")
        table.add_row(
            node.get("name") or node.get("address") or "-", state, *((_scheduling(node),) if wide else ()),
            bar(stats.get("cpu_percent"), f"of {node['cores']}" if wide and node.get("cores") else ""),
            bar(memory.get("percent"), _used(memory) if wide else ""),
            bar(disk.get("percent"), _used(disk) if wide else ""),
            str(node.get("task_count", 0)),
        )
    return table
