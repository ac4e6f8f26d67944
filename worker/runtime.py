"""The Docker adapter: the only module that imports `docker` (with its helpers
worker/dockerlogs.py, which reads containers' output, and worker/cleanup.py).

Containers are named `orca-<task id>-<attempt>.<restart count>-<worker>` and labelled with the
task id, the worker's name, the attempt, the restart count and the task's spec. So creating the same incarnation
of a task twice finds the first container instead of starting a second one, a restarted
worker can rebuild its task DB from Docker alone, and nothing without Orca's labels is ever
touched.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Callable, Iterator

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig
from requests.exceptions import RequestException

from task import Task
from worker.containers import (ATTEMPT_LABEL, Closing, RESTART_LABEL, SPEC_LABEL, TASK_LABEL, WORKER_LABEL,  # noqa: F401
                               ContainerEvent, ContainerStatus, EngineUnreachable, RuntimeFailure, RuntimeOptions,
                               now_iso, status_of)
from worker.containers import explain as _explain
from worker.dockerlogs import DockerLogs
from worker.pulls import ImagePuller

log = logging.getLogger(__name__)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Raw sockets let a task forge packets and sniff its network: no task needs them to serve.
DROPPED_CAPABILITIES = ("NET_RAW",)


class DockerRuntime(DockerLogs):
    """Start, stop, inspect and watch a worker's containers on one Docker engine."""

    def __init__(self, worker_name: str, base_url: str, timeout: float = 60.0,
                 options: RuntimeOptions = RuntimeOptions()) -> None:
        self.worker_name = worker_name
        self._base_url = base_url
        self._timeout = int(timeout)
        self.options = options
        self._puller = ImagePuller(lambda: self._client.api, options.pull_timeout, options.pull_threads)
        self._docker: docker.DockerClient | None = None
        self._connect_lock = threading.Lock()
        try:
            self._client  # connect now when the engine answers
        except DockerException as exc:
            log.warning("worker %s: docker engine at %s unreachable (%s); connecting on next use",
                        worker_name, base_url, _explain(exc))

    @property
    def _client(self) -> docker.DockerClient:
        """The SDK client, built on first use. Building one asks the engine for its API
        version, so a worker whose engine is down still starts (and says so in /health).

        Raises:
            DockerException: the engine does not answer (yet).
        """
        if self._docker is None:
            with self._connect_lock:
                if self._docker is None:
                    self._docker = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
        return self._docker

    def _labels(self, task: Task) -> dict[str, str]:
        return {TASK_LABEL: task.id, WORKER_LABEL: self.worker_name, RESTART_LABEL: str(task.restart_count),
                ATTEMPT_LABEL: str(task.attempt), SPEC_LABEL: json.dumps(task.spec_dict(), separators=(",", ":"))}

    def container_name(self, task: Task) -> str:
        """The one name the current incarnation of `task` has on this worker."""
        worker = re.sub(r"[^A-Za-z0-9_.-]", "-", self.worker_name)
        return f"orca-{task.id}-{task.attempt}.{task.restart_count}-{worker}"

    def start(self, task: Task) -> ContainerStatus:
        """Create and start the task's container, or return the one it already has.

        Uses the low-level API: create, start, and an inspect only when published ports
        must be read back (the high-level API inspects after each call, costing ~10 ms).

        Raises:
            RuntimeFailure: the image cannot be had or Docker refused the container.
        """
        try:
            container_id, existing = self._create(task)
            if existing is not None and existing.get("State", {}).get("Status") != "created":
                return status_of(existing)  # the same incarnation already ran: never start it twice
            self._client.api.start(container_id)
            if task.ports:
                return status_of(self._client.api.inspect_container(container_id))
            return ContainerStatus(container_id=container_id, task_id=task.id, running=True,
                                   started_at=now_iso(), labels=self._labels(task))
        except RuntimeFailure:
            raise
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not start {task.image!r}: {_explain(exc)}") from None

    def _create(self, task: Task) -> tuple[str, dict[str, Any] | None]:
        """Create the container; return (id, None), or (id, inspect data) if it already existed."""
        name = self.container_name(task)
        try:
            return self._create_container(task, name), None
        except ImageNotFound:
            self._pull(task.image)
            return self._create_container(task, name), None
        except APIError as exc:
            if exc.status_code == 409:  # a container with this name exists: same task, reuse it
                attrs = self._client.api.inspect_container(name)
                return attrs["Id"], attrs
            raise

    def _create_container(self, task: Task, name: str) -> str:
        api = self._client.api
        options = self.options
        host_config = api.create_host_config(
            init=True, security_opt=["no-new-privileges"],
            cap_drop=list(DROPPED_CAPABILITIES), pids_limit=task.pids or options.pids_limit,
            log_config=LogConfig(type=LogConfig.types.JSON, config={
                "max-size": str(options.log_max_size), "max-file": str(options.log_max_files)}),
            nano_cpus=int(task.cpu * 1e9) if task.cpu else None,
            mem_limit=task.memory or None,
            port_bindings=dict(task.ports) if task.ports else None,
        )
        created = api.create_container(
            task.image, command=task.command or None, name=name, labels=self._labels(task),
            environment=task.env, host_config=host_config, detach=True,
            ports=[(int(port), proto) for port, _, proto in (key.partition("/") for key in task.ports)] or None,
        )
        return created["Id"]

    def _pull(self, image: str) -> None:
        """Pull `image` (name, name:tag, name@digest, host:port/path[:tag|@digest]) within
        ORCA_PULL_TIMEOUT.

        Raises:
            RuntimeFailure: naming the image, when the engine cannot get it in time.
        """
        repository, reference = pull_reference(image)
        log.info("pulling image %s", image)
        self._puller.pull(image, repository, reference)

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

    def running_ids(self) -> set[str]:
        """Ids of this worker's running containers: one list call, no inspect."""
        try:
            found = self._client.api.containers(filters={"label": f"{WORKER_LABEL}={self.worker_name}",
                                                         "status": "running"})
            return {c["Id"] for c in found}
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not list containers: {_explain(exc)}") from None

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

    def engine_status(self, timeout: float = 3.0) -> dict[str, Any]:
        """Ask the engine for its version, waiting at most `timeout` seconds. Never raises.

        Returns:
            {"reachable": True, "version": ..., "api_version": ...}, or
            {"reachable": False, "error": "docker engine unreachable: <reason>"}.
        """
        try:
            api = self._client.api
            response = api.get(f"{api.base_url}/version", timeout=timeout)
            response.raise_for_status()
            info = response.json()
        except (DockerException, RequestException, ValueError) as exc:
            return {"reachable": False, "error": f"docker engine unreachable: {_explain(exc)}"}
        return {"reachable": True, "version": str(info.get("Version", "")),
                "api_version": str(info.get("ApiVersion", ""))}

    def interrupt(self) -> None:
        """Make waiting pulls give up now (with Closing): the worker shuts down."""
        self._puller.close()

    def close(self) -> None:
        """Abandon waiting pulls, close the client's connections (if it ever connected)."""
        self._puller.close()
        if self._docker is not None:
            self._docker.close()


def pull_reference(image: str) -> tuple[str, str]:
    """Split an image reference into what `images.pull(repository, tag=...)` takes.

    Returns (repository, tag or digest): `busybox` -> ("busybox", "latest"),
    `busybox@sha256:<hex>` -> ("busybox", "sha256:<hex>") (the SDK then pulls
    `busybox@sha256:<hex>`), `registry:5000/app:v1` -> ("registry:5000/app", "v1").
    A tag next to a digest (`app:v1@sha256:...`) is dropped: the digest alone names the image.
    """
    repository, reference = docker.utils.parse_repository_tag(image)
    if "@" in image:
        repository = docker.utils.parse_repository_tag(repository)[0]
    return repository, reference or "latest"
