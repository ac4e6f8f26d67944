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
from typing import TextIO

from worker.runtime import DEFAULT_DOCKER_HOST, EngineUnreachable, LabelledContainer, remove_labelled

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
