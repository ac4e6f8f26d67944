"""The Docker adapter: the only module that imports `docker`.

Containers are named `orca-<task id>-<restart count>-<worker>` and labelled with the task id,
the worker's name, the restart count and the task's spec. So creating the same incarnation
of a task twice finds the first container instead of starting a second one, a restarted
worker can rebuild its task DB from Docker alone, and nothing without Orca's labels is ever
touched.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import RequestException

from task import Task

log = logging.getLogger(__name__)

TASK_LABEL = "orca.task_id"
WORKER_LABEL = "orca.worker"
SPEC_LABEL = "orca.spec"
RESTART_LABEL = "orca.restart_count"
_NO_TIME = "0001-01-01T00:00:00Z"


class RuntimeFailure(Exception):
    """Docker could not do what was asked; the message says why (and names the image)."""


class EngineUnreachable(RuntimeFailure):
    """The Docker engine did not answer."""


@dataclass(frozen=True)
class ContainerStatus:
    """What Docker says about a task's container, in Orca's terms."""

    container_id: str
    task_id: str | None
    running: bool
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""

    def spec(self) -> dict[str, Any] | None:
        """The task spec stored in the container's label, or None if absent or unreadable."""
        try:
            spec = json.loads(self.labels.get(SPEC_LABEL, ""))
        except ValueError:
            return None
        return spec if isinstance(spec, dict) else None


@dataclass(frozen=True)
class ContainerEvent:
    """A container of ours changed: `action` is Docker's (die, oom, destroy, ...)."""

    task_id: str
    container_id: str
    action: str


def _docker_time(value: str | None) -> str | None:
    """Docker's nanosecond timestamps as ISO 8601 UTC with milliseconds; None when unset."""
    if not value or value.startswith("0001-01-01"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    return f"{head}.{(frac + '000')[:3]}Z"


def _host_ports(attrs: dict[str, Any]) -> dict[str, int]:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {key: int(bindings[0]["HostPort"]) for key, bindings in ports.items() if bindings}


def status_of(attrs: dict[str, Any]) -> ContainerStatus:
    """Translate `docker inspect` output into a ContainerStatus."""
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    running = bool(state.get("Running")) or state.get("Status") in ("created", "restarting")
    return ContainerStatus(
        container_id=attrs["Id"],
        task_id=labels.get(TASK_LABEL),
        labels=dict(labels),
        name=str(attrs.get("Name", "")).lstrip("/"),
        running=running,
        exit_code=None if running else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or None,
        started_at=_docker_time(state.get("StartedAt")),
        finished_at=None if running else _docker_time(state.get("FinishedAt")),
        host_ports=_host_ports(attrs),
    )


class DockerRuntime:
    """Start, stop, inspect and watch a worker's containers on one Docker engine."""

    def __init__(self, worker_name: str, base_url: str, timeout: float = 60.0) -> None:
        self.worker_name = worker_name
        self._client = docker.DockerClient(base_url=base_url, timeout=int(timeout))

    def _labels(self, task: Task) -> dict[str, str]:
        return {TASK_LABEL: task.id, WORKER_LABEL: self.worker_name, RESTART_LABEL: str(task.restart_count),
                SPEC_LABEL: json.dumps(task.spec_dict(), separators=(",", ":"))}

    def container_name(self, task: Task) -> str:
        """The one name the current incarnation of `task` has on this worker."""
        worker = re.sub(r"[^A-Za-z0-9_.-]", "-", self.worker_name)
        return f"orca-{task.id}-{task.restart_count}-{worker}"

    def start(self, task: Task) -> ContainerStatus:
        """Create and start the task's container, or return the one it already has.

        Raises:
            RuntimeFailure: the image cannot be had or Docker refused the container.
        """
        try:
            container = self._create(task)
            if container.status == "created":
                container.start()
            container.reload()
            return status_of(container.attrs)
        except RuntimeFailure:
            raise
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not start {task.image!r}: {_explain(exc)}") from None

    def _create(self, task: Task):
        name = self.container_name(task)
        try:
            return self._client.containers.create(**self._create_args(task, name))
        except ImageNotFound:
            self._pull(task.image)
            return self._client.containers.create(**self._create_args(task, name))
        except APIError as exc:
            if exc.status_code == 409:  # a container with this name exists: same task, reuse it
                return self._client.containers.get(name)
            raise

    def _create_args(self, task: Task, name: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "image": task.image, "name": name, "labels": self._labels(task),
            "environment": task.env, "detach": True, "init": True,
            "security_opt": ["no-new-privileges"],
        }
        if task.command:
            args["command"] = task.command
        if task.cpu:
            args["nano_cpus"] = int(task.cpu * 1e9)
        if task.memory:
            args["mem_limit"] = task.memory
        if task.ports:
            args["ports"] = dict(task.ports)
        return args

    def _pull(self, image: str) -> None:
        repository, _, tag = image.partition("@")[0].rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        log.info("pulling image %s", image)
        try:
            self._client.images.pull(repository or image, tag=tag or "latest")
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"image {image!r} is not available: {_explain(exc)}") from None

    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None:
        """Stop and remove a container; return its final status, or None if it was gone."""
        try:
            container = self._client.containers.get(container_id)
            container.stop(timeout=timeout)
            container.reload()
            status = status_of(container.attrs)
            container.remove(v=True, force=True)
            return status
        except NotFound:
            return None
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not stop container {container_id[:12]}: {_explain(exc)}") from None

    def remove(self, container_id: str) -> None:
        """Remove a container of ours, running or not; a missing one is not an error."""
        try:
            self._client.api.remove_container(container_id, v=True, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: a removal is already in progress
                raise RuntimeFailure(f"docker could not remove container {container_id[:12]}: {_explain(exc)}") from None
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not remove container {container_id[:12]}: {_explain(exc)}") from None

    def inspect(self, container_id: str) -> ContainerStatus | None:
        """Return the container's status, or None if it no longer exists."""
        try:
            return status_of(self._client.api.inspect_container(container_id))
        except NotFound:
            return None
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not inspect container {container_id[:12]}: {_explain(exc)}") from None

    def containers(self) -> list[ContainerStatus]:
        """Every container, running or not, that carries this worker's label."""
        try:
            found = self._client.api.containers(all=True, filters={"label": f"{WORKER_LABEL}={self.worker_name}"})
            return [status for c in found if (status := self.inspect(c["Id"])) is not None]
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not list containers: {_explain(exc)}") from None

    def watch(self) -> tuple[Iterator[ContainerEvent], Callable[[], None]]:
        """Open Docker's event stream for this worker's containers.

        Returns:
            (events, close): an iterator of ContainerEvents that blocks until the next one,
            and a function that ends the stream from another thread.
        Raises:
            RuntimeFailure: the engine cannot be reached.
        """
        filters = {"type": "container", "label": f"{WORKER_LABEL}={self.worker_name}",
                   "event": ["start", "die", "oom", "destroy"]}
        try:
            stream = self._client.events(decode=True, filters=filters)
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker events unavailable: {_explain(exc)}") from None

        def events() -> Iterator[ContainerEvent]:
            for raw in stream:
                attrs = (raw.get("Actor") or {}).get("Attributes") or {}
                if attrs.get(TASK_LABEL):
                    yield ContainerEvent(attrs[TASK_LABEL], raw.get("id", ""), raw.get("Action", ""))
        return events(), stream.close

    def version(self) -> dict[str, str]:
        """The engine's version and API version; raises EngineUnreachable."""
        try:
            info = self._client.version()
            return {"version": info.get("Version", ""), "api_version": info.get("ApiVersion", "")}
        except (APIError, DockerException, RequestException) as exc:
            raise EngineUnreachable(f"docker engine unreachable: {_explain(exc)}") from None

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def _explain(exc: Exception) -> str:
    """A one-line reason from a Docker SDK or requests error."""
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
