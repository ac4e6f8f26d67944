"""Crash windows of a worker, with real `python main.py` manager and worker processes and the
real Docker engine (no fakes, no test hooks in production code):

- a worker killed (kill -9) after it accepted a task but before it created the container: it
  is held in that window by an image pull from a "registry" on loopback that accepts
  connections and never answers;
- a worker frozen (SIGSTOP) for less than the down period: nothing moves;
- a worker frozen for longer than the down period: its task moves, and the copy it still runs
  is stopped and removed once it thaws (SIGCONT).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid

import pytest
import requests

from tests.integration.conftest import post_task, split_cluster, wait_for, wait_state

pytestmark = pytest.mark.docker

SLEEPER = ["sleep", "300"]
# The manager's read timeout on every call to a worker (Config.request_timeout, not settable):
# a frozen worker costs the manager this long per poll before the poll counts as a miss.
MANAGER_READ_TIMEOUT = 5.0


# ----- helpers


class HungRegistry:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: dockerd's pull
    from it hangs (TLS handshake, 10 s, then plain HTTP, indefinitely) until it is closed."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hung-registry", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                if self._closed.is_set():
                    connection.close()
                    return
                self._connections.append(connection)

    @property
    def connections(self) -> int:
        """How many connections it has accepted (dockerd's pull attempts)."""
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        """Stop listening and close every accepted connection, so a pending pull fails. Idempotent."""
        self._closed.set()
        self._thread.join(5)
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
        with contextlib.suppress(OSError):
            self._server.close()

    def __enter__(self) -> "HungRegistry":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()



def task_containers(docker_client, task_id: str) -> list:
    """Every container (running or not) labelled with the task's id, whichever worker made it."""
    return docker_client.containers.list(all=True, filters={"label": f"orca.task_id={task_id}"})


def get_task(base_url: str, task_id: str) -> dict:
    return requests.get(f"{base_url}/tasks/{task_id}", timeout=5).json()


def get_node(manager, address: str) -> dict:
    nodes = {n["name"]: n for n in requests.get(f"{manager.manager_url}/nodes", timeout=5).json()}
    return nodes[address]


def logs_of(*processes) -> str:
    return "\n".join(f"----- {p.role} {p.log_path.name}:\n{p.log()}" for p in processes)


def waiting(check, timeout: float, what: str, processes=(), interval: float = 0.1):
    """wait_for, failing with the processes' logs attached."""
    try:
        return wait_for(check, timeout=timeout, interval=interval, what=what)
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}\n{logs_of(*processes)}")


def start_again(process) -> None:
    """Start a process that was killed (kill -9) with its same environment: same port, same name."""
    process.kill()
    process._log.close()
    process.start()


@contextlib.contextmanager
def frozen(process):
    """SIGSTOP the process for the block; SIGCONT afterwards, even on failure."""
    os.kill(process.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if process.proc.poll() is None:
            os.kill(process.proc.pid, signal.SIGCONT)


def assert_engine_responsive(docker_client, image: str, within: float = 5.0) -> None:
    started = time.monotonic()
    assert docker_client.ping()
    docker_client.images.get(image)
    elapsed = time.monotonic() - started
    assert elapsed < within, f"dockerd took {elapsed:.1f}s to answer a ping and an image inspect"


def one_running_container(docker_client, task_id: str, container_id: str):
    """The task's containers are exactly [container_id], and it runs."""
    found = task_containers(docker_client, task_id)
    return [c.id for c in found] == [container_id] and found[0].status == "running"


# ----- 1. killed between accepting a task and creating its container


@pytest.mark.parametrize("down_after", ["1000", "2"], ids=["resent-on-return", "moved-after-down"])
def test_worker_killed_between_accepting_a_task_and_creating_its_container(cluster, docker_client, test_image,
                                                                           down_after):
    """README, Reliability: "If a worker dies after it accepted an event but before it created
    the container, the manager re-sends the event when the worker comes back, or moves the task
    after ORCA_DOWN_AFTER polls. The task is late, not lost." With ORCA_DOWN_AFTER=1000 the
    worker is never declared down (the re-send path); with 2 it is down before it returns (the
    move path: the only worker is the one that comes back)."""
    with HungRegistry() as registry:
        repository = f"127.0.0.1:{registry.port}/orca-late-{uuid.uuid4().hex[:12]}"
        image = f"{repository}:v1"
        try:
            manager, (worker,) = split_cluster(cluster, 1, ORCA_DOWN_AFTER=down_after)
            processes = (manager, worker)
            address = worker.worker_address(0)
            task_id = post_task(manager.manager_url, {"image": image, "command": SLEEPER}).json()["id"]

            # The worker accepted the task and dockerd is pulling its image from the hung registry.
            def accepted_and_pulling():
                mine = requests.get(f"{worker.worker_url(0)}/tasks/{task_id}", timeout=5)
                return mine.ok and mine.json()["state"] == "scheduled" and registry.connections >= 1
            waiting(accepted_and_pulling, 15, "the worker to accept the task and start pulling", processes)
            waiting(lambda: (lambda t: t["state"] == "scheduled" and t["node"] == address)(
                get_task(manager.manager_url, task_id)), 10, "the manager to show it scheduled on the worker",
                processes)
            assert task_containers(docker_client, task_id) == [], "no container yet: the pull hangs"

            worker.kill()  # kill -9 inside the window
            assert_engine_responsive(docker_client, test_image)  # a pull still pending in dockerd blocks nothing
            registry.close()  # dockerd's pending pull fails now, not at some later moment
            assert_engine_responsive(docker_client, test_image)
            if down_after == "2":
                def moved_off():
                    task = get_task(manager.manager_url, task_id)
                    return (get_node(manager, address)["state"] == "down" and task["state"] == "scheduled"
                            and task["node"] is None)
                waiting(moved_off, 15, "the worker to be down and its task waiting for another", processes)
            else:
                assert get_task(manager.manager_url, task_id)["state"] == "scheduled"

            docker_client.images.get(test_image).tag(repository, "v1")  # the image is now present locally
            start_again(worker)  # same port, same name

            running = wait_state(manager.manager_url, task_id, ("running",), timeout=20)
            assert running["node"] == address
            assert running["image"] == image
            waiting(lambda: one_running_container(docker_client, task_id, running["container_id"]), 10,
                    "exactly one running container for the task", processes)

            # It keeps running, on its one container, through two more answered checks of the worker.
            seen = [get_node(manager, address)["last_seen"]]

            def still_one_container_after_two_checks():
                current = get_task(manager.manager_url, task_id)
                assert (current["state"], current["container_id"]) == ("running", running["container_id"]), \
                    f"{current}\n{logs_of(*processes)}"
                assert one_running_container(docker_client, task_id, running["container_id"]), \
                    [(c.name, c.status) for c in task_containers(docker_client, task_id)]
                last_seen = get_node(manager, address)["last_seen"]
                if last_seen != seen[-1]:
                    seen.append(last_seen)
                return len(seen) > 2
            waiting(still_one_container_after_two_checks, 30, "two more answered checks of the worker", processes,
                    interval=0.25)
            mine = requests.get(f"{worker.worker_url(0)}/tasks/{task_id}", timeout=5).json()
            assert (mine["state"], mine["container_id"]) == ("running", running["container_id"])
        finally:
            registry.close()
            with contextlib.suppress(Exception):
                docker_client.images.remove(image)  # only the tag: the test image keeps its own


# ----- 2. frozen for less than the down period


def test_worker_frozen_for_less_than_the_down_period_is_not_declared_lost(cluster, docker_client, test_image):
    """SIGSTOP long enough for the manager's polls to fail (each one waits out its read
    timeout, then counts as a miss) but short of ORCA_DOWN_AFTER misses: after SIGCONT the node
    is up, and the task is running where it was, on the same and only container."""
    # 50 misses: even if polls failed at once (0.3 s each) the down period would be 15 s, twice the freeze.
    manager, (worker,) = split_cluster(cluster, 1, ORCA_STATS_INTERVAL="0.3", ORCA_DOWN_AFTER="50")
    processes = (manager, worker)
    address = worker.worker_address(0)
    task_id = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER}).json()["id"]
    before = wait_state(manager.manager_url, task_id, ("running",))
    assert before["node"] == address
    waiting(lambda: get_node(manager, address)["last_seen"], 5, "the node to be seen", processes)

    stale_for = MANAGER_READ_TIMEOUT + 2.0  # at least one poll has timed out and counted as a miss
    with frozen(worker):
        seen, since = None, time.monotonic()
        deadline = since + stale_for + 10
        while True:
            node = get_node(manager, address)
            assert node["state"] == "up", f"declared down during a short freeze: {node}\n{logs_of(*processes)}"
            if node["last_seen"] != seen:
                seen, since = node["last_seen"], time.monotonic()
            elif time.monotonic() - since >= stale_for:
                break
            assert time.monotonic() < deadline, f"last_seen kept advancing while the worker was stopped: {node}"
            time.sleep(0.1)
        frozen_seen = seen

    waiting(lambda: (lambda n: n["state"] == "up" and n["last_seen"] != frozen_seen)(get_node(manager, address)),
            15, "the manager to hear from the thawed worker", processes)
    after = get_task(manager.manager_url, task_id)
    assert (after["state"], after["node"], after["container_id"], after["restart_count"]) == \
        ("running", address, before["container_id"], before["restart_count"]), f"{after}\n{logs_of(*processes)}"
    assert one_running_container(docker_client, task_id, before["container_id"]), \
        [(c.name, c.status) for c in task_containers(docker_client, task_id)]
    mine = requests.get(f"{worker.worker_url(0)}/tasks/{task_id}", timeout=5).json()
    assert (mine["state"], mine["container_id"]) == ("running", before["container_id"])


# ----- 3. frozen for longer than the down period


class UnreadRequests:
    """The HTTP requests sent to a frozen worker that it has not read, from /proc/net/tcp: an
    established connection to its port with bytes waiting. A frozen worker reads nothing, so
    every request sent after the SIGSTOP shows here until its sender times out and closes the
    connection. All the manager's requests carry the same headers, so the manager's /stats polls
    (sent every ORCA_STATS_INTERVAL) are the smallest; a larger one is a GET /tasks read."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.first_seen: dict[str, float] = {}
        self.smallest: int | None = None
        self.current: dict[str, int] = {}

    def poll(self) -> "UnreadRequests":
        now, current = time.monotonic(), {}
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                unread = int(fields[4].split(":")[1], 16)
                if local_port == self.port and fields[3] == "01" and unread > 0:  # 01: ESTABLISHED
                    current[fields[2]] = unread  # keyed by the sender's address and port
                    self.first_seen.setdefault(fields[2], now)
                    self.smallest = unread if self.smallest is None else min(self.smallest, unread)
        self.current = current
        return self

    def task_reads(self) -> list[float]:
        """The ages (seconds) of the unread requests larger than a /stats poll."""
        now = time.monotonic()
        return [now - self.first_seen[key] for key, size in self.current.items() if size > (self.smallest or 0)]


def freeze_until_moved(manager, owner, other, task_id: str, unread: UnreadRequests, processes) -> dict:
    """(Owner frozen) wait until the manager has it down and the task running on `other`."""
    def moved():
        unread.poll()
        task = get_task(manager.manager_url, task_id)
        return task if (task["state"] == "running" and task["node"] == other.worker_address(0)
                        and get_node(manager, owner.worker_address(0))["state"] == "down") else None
    # Two misses of MANAGER_READ_TIMEOUT each, then a start on the other worker.
    return waiting(moved, 2 * MANAGER_READ_TIMEOUT + 15, "the owner down and the task running elsewhere",
                   processes, interval=0.05)


def owner_and_other(workers, node: str):
    owner = next(w for w in workers if w.worker_address(0) == node)
    return owner, next(w for w in workers if w is not owner)


def port_of(process) -> int:
    return int(process.worker_address(0).rsplit(":", 1)[1])


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads /proc/net/tcp (Linux)")


@needs_proc
def test_worker_frozen_past_the_down_period_has_its_stale_copy_removed_on_thaw(cluster, docker_client, test_image):
    """SIGSTOP the worker running a task until the manager declares it down and the task runs
    on the other worker; SIGCONT once the manager's reads of it have timed out. The frozen
    worker's copy (its container kept running: Docker does not freeze with the worker) is then
    stopped and removed, leaving one container."""
    manager, workers = split_cluster(cluster, 2, ORCA_STATS_INTERVAL="0.3", ORCA_DOWN_AFTER="2")
    processes = (manager, *workers)
    task_id = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER}).json()["id"]
    first = wait_state(manager.manager_url, task_id, ("running",))
    owner, other = owner_and_other(workers, first["node"])
    unread = UnreadRequests(port_of(owner))

    with frozen(owner):
        second = freeze_until_moved(manager, owner, other, task_id, unread, processes)
        moved_at = time.monotonic()
        assert second["container_id"] != first["container_id"]
        assert second["restart_count"] == first["restart_count"] + 1
        assert docker_client.containers.get(first["container_id"]).status == "running", \
            "the frozen worker's container keeps running while it is frozen"
        # No GET /tasks sent before the worker was declared down may be answered after it: thaw
        # once those have timed out (the change feed keeps asking, so younger ones may wait).
        waiting(lambda: all(age < time.monotonic() - moved_at for age in unread.poll().task_reads()),
                MANAGER_READ_TIMEOUT + 35, "the manager's task reads sent before the move to time out",
                processes)

    waiting(lambda: one_running_container(docker_client, task_id, second["container_id"]), 20,
            "the thawed worker's stale copy to be stopped and removed", processes)
    waiting(lambda: get_node(manager, owner.worker_address(0))["state"] == "up", 10,
            "the thawed worker to be up again", processes)
    final = get_task(manager.manager_url, task_id)
    assert (final["state"], final["node"], final["container_id"]) == \
        ("running", other.worker_address(0), second["container_id"]), f"{final}\n{logs_of(*processes)}"
    assert one_running_container(docker_client, task_id, second["container_id"])


@needs_proc
def test_worker_frozen_past_the_down_period_and_thawed_during_a_read_has_its_stale_copy_removed(
        cluster, docker_client, test_image):
    """As above, but SIGCONT while a GET /tasks the manager sent before declaring the worker down
    is still waiting in the worker's socket (young enough to be answered, not timed out). Whether
    one is waiting depends on where the manager's poll cycle was at the freeze, so the freeze is
    tried up to 3 times (the task moving back and forth); a freeze that did not catch one is
    thawed after that read timed out, which is the test above."""
    manager, workers = split_cluster(cluster, 2, ORCA_STATS_INTERVAL="0.3", ORCA_DOWN_AFTER="2")
    processes = (manager, *workers)
    task_id = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER}).json()["id"]
    current = wait_state(manager.manager_url, task_id, ("running",))
    for _ in range(3):
        owner, other = owner_and_other(workers, current["node"])
        unread = UnreadRequests(port_of(owner))
        with frozen(owner):
            moved = freeze_until_moved(manager, owner, other, task_id, unread, processes)
            # Answered at once (a long poll: 2 s after the thaw) before the manager's 5 s (7 s) timeout,
            # with 0.8 s to spare for the thaw.
            caught = [age for age in unread.poll().task_reads() if age < MANAGER_READ_TIMEOUT - 0.8]
            if not caught:
                waiting(lambda: not unread.poll().task_reads(), MANAGER_READ_TIMEOUT + 5,
                        "the manager's task reads of the frozen worker to time out", processes)
        if caught:
            break
        waiting(lambda: one_running_container(docker_client, task_id, moved["container_id"]), 20,
                "the thawed worker's stale copy to be stopped and removed", processes)
        current = moved
    else:
        pytest.skip("no freeze caught a task read of the manager in flight")

    waiting(lambda: one_running_container(docker_client, task_id, moved["container_id"]), 15,
            "the thawed worker's stale copy to be stopped and removed", processes)
    final = get_task(manager.manager_url, task_id)
    assert (final["state"], final["node"], final["container_id"]) == \
        ("running", other.worker_address(0), moved["container_id"])
