"""`python main.py cleanup [--worker NAME] [--dry-run]`: remove the containers Orca left.

Removes every container labelled both `orca.task_id` and `orca.worker` (or only those whose
`orca.worker` is NAME), running or not, and nothing else. Meant for when Orca is stopped: a
running worker would see its tasks' containers vanish and fail them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import docker
from docker.errors import APIError, DockerException, NotFound
from requests.exceptions import RequestException

from worker.containers import TASK_LABEL, WORKER_LABEL, EngineUnreachable, explain
from worker.runtime import DEFAULT_DOCKER_HOST

log = logging.getLogger(__name__)


def cleanup(docker_host: str, worker_name: str | None = None, dry_run: bool = False) -> list[str]:
    """Remove Orca's containers (only `worker_name`'s when given); return the removed ids.

    Raises:
        EngineUnreachable: the engine cannot be reached.
        RuntimeError: Docker refused to remove some of them (the message names them).
    """
    removed, failed = remove_labelled(docker_host, worker_name, dry_run)
    if failed:
        names = ", ".join(f"{c.name} ({reason})" for c, reason in failed)
        raise RuntimeError(f"could not remove {len(failed)} container(s): {names}")
    return [c.container_id for c in removed]


def cleanup_main(argv: list[str] | None = None, docker_host: str | None = None, out: TextIO = sys.stdout) -> int:
    """Parse `[--worker NAME] [--dry-run]`, remove the containers and print one line each.

    The engine is `docker_host`, else DOCKER_HOST, else the local socket. Returns the exit
    status: 0 done (also when there was nothing to remove), 1 the engine is unreachable or
    a container could not be removed, 2 bad arguments.
    """
    parser = argparse.ArgumentParser(prog="python main.py cleanup", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", metavar="NAME", help="only the containers of this worker (its orca.worker label)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    host = docker_host or os.environ.get("DOCKER_HOST", "").strip() or DEFAULT_DOCKER_HOST
    try:
        removed, failed = remove_labelled(host, args.worker or None, args.dry_run)
    except EngineUnreachable as exc:
        print(f"orca cleanup: {exc}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for container in removed:
        print(f"{verb} {_describe(container)}", file=out)
    for container, reason in failed:
        print(f"orca cleanup: could not remove {_describe(container)}: {reason}", file=sys.stderr)
    scope = f" of worker {args.worker}" if args.worker else ""
    print(f"{verb} {len(removed)} container(s){scope}", file=out)
    return 1 if failed else 0


def _describe(container: LabelledContainer) -> str:
    return (f"{container.container_id[:12]} {container.name} ({container.state}; task {container.task_id}, "
            f"worker {container.worker})")


@dataclass(frozen=True)
class LabelledContainer:
    """A container that carries Orca's labels, as `docker ps -a` lists it."""

    container_id: str
    name: str
    task_id: str
    worker: str
    state: str


def remove_labelled(base_url: str, worker_name: str | None = None, dry_run: bool = False,
                    timeout: float = 60.0) -> tuple[list[LabelledContainer], list[tuple[LabelledContainer, str]]]:
    """Remove (forcibly, running or not) every container labelled both orca.task_id and
    orca.worker, or only those of `worker_name`. A container without both labels is never
    touched: Docker filters by them, and each label is checked again before removal.

    Returns:
        (removed, failed): the containers removed (with dry_run: that would be), and those
        Docker refused to remove, each with the reason.
    Raises:
        EngineUnreachable: the engine cannot be reached.
    """
    wanted = [TASK_LABEL, f"{WORKER_LABEL}={worker_name}" if worker_name else WORKER_LABEL]
    try:
        client = docker.DockerClient(base_url=base_url, timeout=int(timeout))
        try:
            found = [_labelled(c) for c in client.api.containers(all=True, filters={"label": wanted})]
            ours = [c for c in found if c is not None and (not worker_name or c.worker == worker_name)]
            return _remove_each(client, ours, dry_run)
        finally:
            client.close()
    except (APIError, DockerException, RequestException) as exc:
        raise EngineUnreachable(f"docker engine unreachable: {explain(exc)}") from None


def _labelled(summary: dict[str, Any]) -> LabelledContainer | None:
    labels = summary.get("Labels") or {}
    if not labels.get(TASK_LABEL) or not labels.get(WORKER_LABEL):
        return None
    names = summary.get("Names") or [""]
    return LabelledContainer(summary["Id"], names[0].lstrip("/"), labels[TASK_LABEL], labels[WORKER_LABEL],
                             str(summary.get("State", "")))


def _remove_each(client: docker.DockerClient, containers: list[LabelledContainer],
                 dry_run: bool) -> tuple[list[LabelledContainer], list[tuple[LabelledContainer, str]]]:
    removed, failed = [], []
    for container in containers:
        try:
            if not dry_run:
                client.api.remove_container(container.container_id, v=True, force=True)
            removed.append(container)
        except NotFound:
            pass  # gone meanwhile
        except APIError as exc:
            failed.append((container, explain(exc)))
    return removed, failed
