"""The Docker adapter: the only module that imports `docker`.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import RequestException

from task import Task

log = logging.getLogger(__name__)

TASK_LABEL = "orca.task_id"
WORKER_LABEL = "orca.worker"
SPEC_LABEL = "orca.spec"
RESTART_LABEL = "orca.restart_count"
ATTEMPT_LABEL = "orca.attempt"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
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
    created: bool = False  # created but never started (its worker died in between)

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


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _host_ports(attrs: dict[str, Any]) -> dict[str, int]:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {key: int(bindings[0]["HostPort"]) for key, bindings in ports.items() if bindings}


def status_of(attrs: dict[str, Any]) -> ContainerStatus:
    """Translate `docker inspect` output into a ContainerStatus."""
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    running = bool(state.get("Running")) or state.get("Status") == "restarting"
    return ContainerStatus(
        container_id=attrs["Id"],
        task_id=labels.get(TASK_LABEL),
        labels=dict(labels),
        name=str(attrs.get("Name", "")).lstrip("/"),
        running=running,
        created=state.get("Status") == "created",
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
        self._base_url = base_url
        self._timeout = int(timeout)
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
                                   started_at=_now_iso(), labels=self._labels(task))
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
        host_config = api.create_host_config(
            init=True, security_opt=["no-new-privileges"],
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
        """Pull `image` (name, name:tag, name@digest, host:port/path[:tag|@digest]).

        Raises:
            RuntimeFailure: naming the image, when the engine cannot get it.
        """
        repository, reference = pull_reference(image)
        log.info("pulling image %s", image)
        try:
            self._client.images.pull(repository, tag=reference)
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

    def logs(self, container_id: str, tail: int | None = None, stdout: bool = True,
             stderr: bool = True) -> bytes | None:
        """The container's output so far (its last `tail` lines; all when None), or None when
        the container no longer exists. Raises RuntimeFailure."""
        opened = self.stream_logs(container_id, tail, stdout, stderr, follow=False)
        if opened is None:
            return None
        chunks, close = opened
        try:
            return b"".join(chunks)
        finally:
            close()

    def stream_logs(self, container_id: str, tail: int | None, stdout: bool, stderr: bool,
                    follow: bool) -> tuple[Iterator[bytes], Callable[[], None]] | None:
        """Open the container's output (stdout and stderr interleaved as written).

        Args:
            tail: start with the last `tail` lines; None: with the first line.
            follow: keep reading as the container writes; the stream ends when it stops.
        Returns:
            (chunks, close), or None when the container no longer exists. Following, each
            chunk is one line (a line longer than MAX_LINE comes in pieces); otherwise chunks
            are batches of lines. close() ends the stream from another thread. Reading
            raises RuntimeFailure when the engine goes away.
        Raises:
            RuntimeFailure: the engine cannot be reached.
        """
        try:
            stream = self._client.api.logs(container_id, stdout=stdout, stderr=stderr, stream=True,
                                           follow=follow, tail="all" if tail is None else int(tail))
        except NotFound:
            return None
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not read the output of container {container_id[:12]}: "
                                 f"{_explain(exc)}") from None
        chunks = _lines(stream) if follow else _batches(stream)
        return _reading(chunks, container_id), _closer(stream)

    def close(self) -> None:
        """Close the client's connections (if it ever connected)."""
        if self._docker is not None:
            self._docker.close()


MAX_LINE = 64 * 1024  # a followed line longer than this is sent in pieces
BATCH = 64 * 1024  # bytes per chunk of a non-following read


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


def _lines(frames: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut Docker's frames into lines, each ending in a newline (but perhaps the last)."""
    pending = b""
    for frame in frames:
        pending += frame
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
        while len(pending) >= MAX_LINE:
            yield pending[:MAX_LINE]
            pending = pending[MAX_LINE:]
    if pending:
        yield pending


def _batches(frames: Iterable[bytes]) -> Iterator[bytes]:
    """Join Docker's frames (one per line) into chunks of about BATCH bytes."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size >= BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


def _closer(stream: Any) -> Callable[[], None]:
    """stream.close() made safe to call more than once and from any thread."""
    done = threading.Event()

    def close() -> None:
        if not done.is_set():
            done.set()
            try:
                stream.close()
            except (OSError, AttributeError, ValueError):
                pass  # already closed under us
    return close


def _reading(chunks: Iterator[bytes], container_id: str) -> Iterator[bytes]:
    """Turn a broken read of a container's output into RuntimeFailure."""
    try:
        yield from chunks
    except (APIError, DockerException, RequestException, OSError, ValueError, AttributeError) as exc:
        # a socket closed by close() from another thread surfaces as any of these
        raise RuntimeFailure(f"reading the output of container {container_id[:12]} stopped: "
                             f"{_explain(exc)}") from None


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
        raise EngineUnreachable(f"docker engine unreachable: {_explain(exc)}") from None


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
            failed.append((container, _explain(exc)))
    return removed, failed


def _explain(exc: Exception) -> str:
    """A one-line reason from a Docker SDK or requests error."""
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
