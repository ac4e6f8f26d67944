"""`orca run --wait`: the task's output on the terminal as it comes, then how the task ended.

stdout and stderr are two follows of the manager's GET /tasks/<id>/logs (`stream=stdout`,
`stream=stderr`), each copied by its own thread and client to this process's stdout or
stderr. The main thread polls the task until it is completed or failed, lets the follows
(which the manager ends when the task ends) drain, and reports the end on stderr.
"""
from __future__ import annotations

import threading
import time
from typing import Any, BinaryIO, Callable

import click

from cli.client import ClientError, ManagerClient, ManagerUnreachable
from cli.render import SHORT_ID

TERMINAL = ("completed", "failed")
POLL_INTERVAL = 0.2
UNREACHABLE_GRACE = 5.0  # seconds --wait keeps polling a manager that stopped answering
DRAIN_TIMEOUT = 5.0  # seconds the follows get, once the task has ended, to deliver their last lines
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C


class OutputRelay:
    """Copies one stream of a task's output to a binary file as it arrives, on a daemon thread.

    Failures never reach the caller as exceptions: a client error is kept in `error`, a
    closed sink (`orca run --wait ... | head`) ends the copy quietly.
    """

    def __init__(self, connect: Callable[[], ManagerClient], task_id: str, stream: str, sink: BinaryIO) -> None:
        self.error: ClientError | None = None
        self._args = (connect, task_id, stream, sink)
        self._thread = threading.Thread(target=self._copy, name=f"orca-{stream}", daemon=True)

    def start(self) -> "OutputRelay":
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _copy(self) -> None:
        connect, task_id, stream, sink = self._args
        client = connect()  # one per thread: a requests Session is not to be shared
        try:
            for chunk in client.logs(task_id, follow=True, stream=stream):
                sink.write(chunk)
                sink.flush()
        except ClientError as exc:
            self.error = exc
        except (BrokenPipeError, ValueError):  # the reader went away, or the sink was closed
            pass
        finally:
            client.close()


def finish(client: ManagerClient, connect: Callable[[], ManagerClient], task: dict[str, Any]) -> int:
    """Stream the task's output until it ends, report how it ended, return the exit status.

    Returns the task's exit code (see exit_status), or INTERRUPTED on Ctrl-C, which leaves
    the task running and says so.
    """
    started = time.monotonic()
    relays = [OutputRelay(connect, task["id"], name, click.get_binary_stream(name)).start()
              for name in ("stdout", "stderr")]
    try:
        wait_for(client, task)
        for relay in relays:
            relay.join(DRAIN_TIMEOUT)
    except KeyboardInterrupt:
        click.echo(f"orca: stopped waiting; task {task['id']} is left running "
                   f"('orca stop {task['id'][:SHORT_ID]}' stops it)", err=True)
        return INTERRUPTED
    for error in {str(r.error) for r in relays if r.error}:
        click.echo(f"orca: the task's output could not be shown: {error}", err=True)
    return report(task, time.monotonic() - started)


def report(task: dict[str, Any], seconds: float) -> int:
    """Say on stderr how the task ended; return the exit status for it."""
    code = task.get("exit_code")
    if task["state"] == "completed":
        click.echo(f"task {task['id'][:SHORT_ID]} completed after {seconds:.1f}s, exit code "
                   f"{code if code is not None else '-'}", err=True)
        return exit_status(code, 0)
    click.echo(f"orca: task {task['id'][:SHORT_ID]} failed after {seconds:.1f}s: "
               f"{task.get('error') or 'no reason given'}", err=True)
    return exit_status(code, 1)


def exit_status(code: Any, default: int) -> int:
    """The task's exit code as this command's status: `default` when there is none, 1 when it
    does not fit a status (a negative or a non-zero multiple of 256 would read as success)."""
    if not isinstance(code, int) or isinstance(code, bool):
        return default
    return code if 0 <= code <= 255 else 1


def wait_for(client: ManagerClient, task: dict[str, Any]) -> None:
    """Poll the task every POLL_INTERVAL until it is completed or failed, updating `task` in place
    (so that a caller interrupted by Ctrl-C still has the latest state).

    A manager that stops answering is polled for UNREACHABLE_GRACE seconds more, then
    ManagerUnreachable is raised.
    """
    last_answer = time.monotonic()
    while task["state"] not in TERMINAL:
        time.sleep(POLL_INTERVAL)
        try:
            task.update(client.task(task["id"]))
            last_answer = time.monotonic()
        except ManagerUnreachable:
            if time.monotonic() - last_answer > UNREACHABLE_GRACE:
                raise
