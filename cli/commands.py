"""The client commands: run, status, stop, logs, nodes and events, against the manager's HTTP API.

Every failure is one line on stderr (`orca: ...`) and exit status 1; click's own usage errors
exit 2. `run --wait` shows the task's output and exits with its exit code (cli/wait.py).
"""
from __future__ import annotations

import functools
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any, Callable

import click
from rich.console import Console

from cli.client import ClientError, ManagerClient, default_url
from cli.events import TOPICS as EVENT_TOPICS
from cli.events import follow as follow_events
from cli.render import WIDE, nodes_table, task_detail, tasks_table
from cli.spec import SpecError, build_event, load_event, split_arguments
from cli.wait import INTERRUPTED, finish

PIPE_WIDTH = 1000  # piped output is for grep and friends: no column is cut at 80


class Failure(click.ClickException):
    """A failure shown as one line, `orca: <message>`, with exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"orca: {self.format_message()}", err=True)


def reports_errors(command: Callable) -> Callable:
    """Turn the client's and the task file's errors into one-line failures."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ClientError, SpecError) as exc:
            raise Failure(str(exc)) from None
    return wrapper


def manager_option(command: Callable) -> Callable:
    """The --manager URL option, defaulting to ORCA_MANAGER_URL (read after .env is loaded)."""
    return click.option(
        "--manager", "manager_url", metavar="URL", default=lambda: default_url(os.environ),
        show_default="$ORCA_MANAGER_URL or http://127.0.0.1:5555",
        help="The manager's address. ORCA_TOKEN, when set, is sent as a bearer token.",
    )(command)


def connect(manager_url: str) -> ManagerClient:
    """A client for the manager at `manager_url`, with ORCA_TOKEN as bearer token when set."""
    return ManagerClient(manager_url, token=os.environ.get("ORCA_TOKEN", "").strip() or None)


def out() -> Console:
    """Console for results (stdout): fitted to a terminal; plain and never cut when piped."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def now() -> datetime:
    return datetime.now(timezone.utc)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


# ----- run

@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-f", "--file", "task_file", type=click.File("r"), metavar="FILE",
              help="A task (or a whole task event) as JSON; '-' reads stdin. Flags override it.")
@click.option("--image", metavar="IMAGE", help="The image to run (instead of the first argument).")
@click.option("--name", metavar="NAME", help="The task's name (letters, digits, '_.-'); the image's name by default.")
@click.option("-e", "--env", multiple=True, metavar="NAME=VALUE", help="An environment variable; repeatable.")
@click.option("--cpu", metavar="CORES", help="CPU limit in cores, e.g. 0.5.")
@click.option("-m", "--memory", metavar="SIZE", help="Memory limit in bytes or a size such as 64m.")
@click.option("-p", "--port", "ports", multiple=True, metavar="[HOST:]PORT/PROTO",
              help="Publish a container port (e.g. 8080/tcp) on any free host port, or on HOST; repeatable.")
@click.option("-w", "--wait", is_flag=True,
              help="Show the task's output as it comes (stdout and stderr apart) and exit with its exit code.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[IMAGE] [COMMAND [ARG...]]")
@manager_option
@reports_errors
def run(task_file, image, name, env, cpu, memory, ports, wait, args, manager_url) -> None:
    """Start a task and print its id.

    As with `docker run`, options come first, then the image, then the command and its
    arguments. With --image or -f, every argument is the command (after `--` if the first
    starts with '-'):

    \b
        orca run --memory 64m busybox sh -c 'echo hi; sleep 30'
        orca run --wait --image busybox -- sh -c 'echo hi'
    """
    base = load_event(task_file.read(), task_file.name) if task_file else None
    image, command = split_arguments(image, task_file is not None, args)
    event = build_event(base, image=image, name=name, env=env, cpu=cpu, memory=memory, ports=ports,
                        command=command)
    client = connect(manager_url)
    task = client.submit(event)
    click.echo(task["id"])
    if wait:
        sys.stdout.flush()  # the id before any of the task's output
        click.get_current_context().exit(finish(client, lambda: connect(manager_url), task))


# ----- status, stop

@click.command()
@click.argument("task_id", required=False, metavar="[ID]")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def status(task_id, as_json, manager_url) -> None:
    """Show every task, or one task in detail. ID may be any unique start of a task id."""
    client = connect(manager_url)
    if task_id is None:
        tasks = client.tasks()
        if as_json:
            print_json(tasks)
        elif tasks:
            out().print(tasks_table(tasks, now()))
        else:
            click.echo("no tasks")
        return
    task = client.task(client.resolve(task_id))
    if as_json:
        print_json(task)
    else:
        out().print(task_detail(task, now()))


@click.command()
@click.argument("task_id", metavar="ID")
@click.option("--purge", is_flag=True, help="Purge a finished task now: the manager, its store and its worker "
                                              "forget it (refused while it has not finished).")
@manager_option
@reports_errors
def stop(task_id, purge, manager_url) -> None:
    """Stop a task: its container is stopped and removed. Prints the task's id."""
    client = connect(manager_url)
    task_id = client.resolve(task_id)
    task = client.purge(task_id) if purge else client.stop(task_id)
    click.echo(task["id"])


# ----- logs

@click.command()
@click.argument("task_id", metavar="ID")
@click.option("-f", "--follow", is_flag=True, help="Keep printing output as the task writes it.")
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines.")
@manager_option
@reports_errors
def logs(task_id, follow, tail, manager_url) -> None:
    """Print a task's output (stdout and stderr of its container)."""
    client = connect(manager_url)
    task_id = client.task(client.resolve(task_id))["id"]  # an unknown id is "not found", route or not
    stdout = click.get_binary_stream("stdout")
    try:
        for chunk in client.logs(task_id, tail=tail, follow=follow):
            stdout.write(chunk)
            stdout.flush()
    except KeyboardInterrupt:
        click.get_current_context().exit(INTERRUPTED)
    except BrokenPipeError:  # `orca logs ID | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # no second error at exit
        click.get_current_context().exit(0)


# ----- nodes

@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def nodes(as_json, manager_url) -> None:
    """Show the workers: state, CPU, memory and disk use, task count."""
    show_nodes(manager_url, as_json, empty="no workers")


def show_nodes(manager_url: str, as_json: bool, empty: str) -> None:
    """Print the manager's nodes as JSON or a table (`orca nodes`, `orca node ls`)."""
    found = connect(manager_url).nodes()
    if as_json:
        print_json(found)
    elif found:
        console = out()
        console.print(nodes_table(found, now(), wide=console.width >= WIDE))
    else:
        click.echo(empty)


# ----- events

@click.command()
@click.option("--since", type=click.IntRange(min=0), metavar="N", help="Start after event index N (default: only new events).")
@click.option("--topic", "topics", multiple=True, type=click.Choice(EVENT_TOPICS), help="Only this topic; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as the manager's JSON, one per line.")
@manager_option
@reports_errors
def events(since, topics, as_json, manager_url) -> None:
    """Print the manager's events (task states, nodes up and down, services, leader) as they happen."""
    try:
        follow_events(lambda: connect(manager_url), since, tuple(topics), as_json)
    except KeyboardInterrupt:
        click.get_current_context().exit(INTERRUPTED)


COMMANDS = (run, status, stop, logs, nodes, events)
