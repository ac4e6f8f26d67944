"""Several managers on one PostgreSQL, real processes and the real engine: the seed's
two-manager scenario, failover by kill -9, a frozen leader (kill -STOP past the TTL), and a
hand-over on SIGTERM. Outcomes are asserted, never times."""
from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from task.wire import SEEN_TERM_HEADER, TERM_HEADER
from tests.integration.conftest import OrcaProcess, wait_for

pytestmark = pytest.mark.docker

TTL = "4"  # short for a test, long enough that a loaded machine does not make leadership flap
VERBATIM_CREATE = ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "nginx", '
                   '"arguments": [], "resources": {}, "env": {}}], "id": 1}')
VERBATIM_STATUS = ('{"jsonrpc": "2.0", "method": "ContainerService.Status", "params": [{"job_id": "%s"}], '
                   '"id": 1}')
JSON = {"Content-Type": "application/json"}


class Managers:
    """Workers and managers of one test, sharing one fresh database."""

    def __init__(self, cluster, url: str) -> None:
        self.cluster, self.url = cluster, url
        self.workers: list[OrcaProcess] = []
        self.managers: list[OrcaProcess] = []

    def start(self, workers: int = 2, managers: int = 3, ttl: str = TTL) -> "Managers":
        self.workers = [self.cluster.start("worker", workers=1) for _ in range(workers)]
        addresses = ",".join(w.worker_address(0) for w in self.workers)
        self.managers = [self.cluster.start("manager", workers=0, ORCA_WORKERS=addresses, ORCA_DATABASE_URL=self.url,
                                            ORCA_LEASE_TTL=ttl, ORCA_DISPATCH_INTERVAL="0.2")
                         for _ in range(managers)]
        return self

    def cluster_view(self, manager: OrcaProcess) -> dict:
        return requests.get(f"{manager.manager_url}/cluster", timeout=5).json()

    def leader(self, among: list[OrcaProcess] | None = None, other_than: str | None = None) -> OrcaProcess:
        """The manager that /cluster (asked of `among`) names leader, waiting for one."""
        among = among or self.managers
        by_name = {m.manager_url.removeprefix("http://"): m for m in self.managers}

        def find():
            view = self.cluster_view(among[0])
            name = view["leader"]
            return by_name.get(name) if name and name != other_than else None
        return wait_for(find, timeout=30, what="a leader")

    def task_states(self, manager: OrcaProcess) -> dict[str, str]:
        return {t["id"]: t["state"] for t in requests.get(f"{manager.manager_url}/tasks", timeout=10).json()}

    def running_copies(self) -> Counter:
        """Running containers per task id, across both workers."""
        return Counter(c.labels["orca.task_id"] for c in self.cluster.containers(all=False))


@pytest.fixture
def managers(cluster, pg_database):
    return Managers(cluster, pg_database)


def submit(urls: list[str], task_id: str, image: str, patience: float = 30.0) -> bool:
    """POST the task through the managers in turn, as a client honouring 503 + Retry-After
    would, until one acknowledges it (201, or 409 for a retry of a submission that was
    recorded); False if none did within `patience` seconds."""
    body = {"state": "running", "task": {"id": task_id, "image": image, "command": ["sleep", "300"]}}
    deadline = time.monotonic() + patience
    attempt = 0
    while time.monotonic() < deadline:
        url = urls[attempt % len(urls)]
        attempt += 1
        try:
            answer = requests.post(f"{url}/tasks", json=body, timeout=15)
        except requests.RequestException:
            continue
        if answer.status_code == 201 or (answer.status_code == 409 and "already exists" in answer.text):
            return True
        if answer.status_code == 503:
            time.sleep(0.2)  # the client's back-off (Retry-After), not a synchronisation
    return False


def test_the_seeds_two_manager_scenario(managers):
    """ContainerService.Create on one manager, then Status with its job id on both: the same."""
    managers.start(workers=1, managers=2)
    first, second = managers.managers
    created = requests.post(f"{first.manager_url}/jrpc", data=VERBATIM_CREATE, headers=JSON, timeout=10).json()
    job_id = created["result"]["job_id"]
    assert created["error"] is None and created["result"]["message"] == "Job created successfully"

    def status(manager):
        body = VERBATIM_STATUS % job_id
        return requests.post(f"{manager.manager_url}/jrpc", data=body, headers=JSON, timeout=10).json()

    ended = wait_for(lambda: (s := status(first))["result"]["status"] in ("failed", "completed") and s,
                     timeout=30, what="the job to end")
    assert wait_for(lambda: status(second) == ended or None, timeout=10, what="the same status on the second manager")
    assert ended["result"]["job_id"] == job_id and ended["id"] == 1


def test_kill_9_of_the_leader_mid_burst(managers, test_image):
    """100 tasks through three managers; the leader is killed mid-burst. Every acknowledged
    task ends running exactly once, and a new leader with a higher term takes over."""
    managers.start(workers=2, managers=3)
    leader = managers.leader()
    term = managers.cluster_view(leader)["term"]
    survivors = [m for m in managers.managers if m is not leader]
    ids = [str(uuid.uuid4()) for _ in range(100)]
    urls = [m.manager_url for m in managers.managers]
    done, forty = Counter(), threading.Event()
    lock = threading.Lock()

    def one(i: int) -> bool:
        ok = submit(urls[i % 3:] + urls[:i % 3], ids[i], test_image)
        with lock:
            done[ok] += 1
            if done[True] >= 40:
                forty.set()
        return ok
    with ThreadPoolExecutor(8) as pool:
        results = pool.map(one, range(100))
        assert forty.wait(60)
        leader.kill()  # kill -9, mid-burst: submissions are in flight through all three
        acknowledged = [task_id for task_id, ok in zip(ids, list(results)) if ok]
    assert len(acknowledged) == 100  # clients that retry on 503 get every task through

    new_leader = managers.leader(among=survivors, other_than=leader.manager_url.removeprefix("http://"))
    assert managers.cluster_view(new_leader)["term"] > term

    late: dict[str, str | None] = {}

    def all_running():
        states = managers.task_states(survivors[0])
        late.clear()
        late.update({t: states.get(t) for t in acknowledged if states.get(t) != "running"})
        return not late and states
    wait_for(all_running, timeout=120, interval=0.5, what="every acknowledged task to run",
             explain=lambda: f"not running: {dict(Counter(late.values()))}, e.g. {list(late)[:3]}")
    copies = wait_for(lambda: (c := managers.running_copies()) and all(c[t] == 1 for t in acknowledged) and c,
                      timeout=30, what="exactly one running container per task")
    assert max(copies.values()) == 1, [t for t, n in copies.items() if n > 1]
    for follower in survivors:  # every manager answers the same from the database
        wait_for(lambda: all(managers.task_states(follower).get(t) == "running" for t in acknowledged),
                 timeout=10, what="the followers' reads to catch up")


def test_a_frozen_leader_wakes_as_a_follower_and_commands_nothing(managers, test_image):
    """kill -STOP of the leader past the TTL, then -CONT: a new leader with a newer term runs
    the cluster; the old one follows, its stale term is refused by workers, and no task runs
    twice."""
    managers.start(workers=2, managers=2)
    leader = managers.leader()
    old_term = managers.cluster_view(leader)["term"]
    other = next(m for m in managers.managers if m is not leader)
    before = [str(uuid.uuid4()) for _ in range(6)]
    assert all(submit([leader.manager_url], t, test_image) for t in before)
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        new_leader = managers.leader(among=[other], other_than=leader.manager_url.removeprefix("http://"))
        assert new_leader is other
        after = [str(uuid.uuid4()) for _ in range(6)]
        assert all(submit([other.manager_url], t, test_image) for t in after)
        wait_for(lambda: all(s == "running" for s in managers.task_states(other).values()) and
                 len(managers.task_states(other)) == 12, timeout=60, interval=0.5, what="all twelve tasks running")
        new_term = managers.cluster_view(other)["term"]
        assert new_term > old_term
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    # On waking it finds a newer term in the lease and steps down (whatever happens next: on a
    # loaded machine leadership may legitimately move again, always with a newer term).
    wait_for(lambda: f"stepping down from term {old_term}" in leader.log_path.read_text(errors="replace"),
             timeout=20, what="the woken leader to step down")
    view = managers.cluster_view(leader)
    assert view["term"] >= new_term and view["leader"]
    # A write through the woken manager is forwarded to the leader and answered by it.
    late = str(uuid.uuid4())
    assert submit([leader.manager_url], late, test_image)
    # Workers refuse any command carrying the old term, naming both terms.
    refused = requests.post(f"{managers.workers[0].worker_url(0)}/tasks", headers={TERM_HEADER: str(old_term)},
                            json={"state": "running", "task": {"image": test_image}}, timeout=5)
    seen = int(refused.headers[SEEN_TERM_HEADER])
    assert refused.status_code == 409 and seen >= new_term
    assert f"term {old_term}" in refused.json()["error"] and f"term {seen}" in refused.json()["error"]
    late_owner = managers.leader()
    wait_for(lambda: managers.task_states(late_owner).get(late) == "running", timeout=30, what="the late task to run")
    copies = managers.running_copies()
    assert set(copies) == set(before + after + [late]) and max(copies.values()) == 1, copies


def test_sigterm_hands_the_lease_over_at_once(managers, test_image):
    """With a TTL of 60 s, a new leader within the test's deadline can only come from the
    resigning leader handing the lease over."""
    managers.start(workers=1, managers=2, ttl="60")
    leader = managers.leader()
    other = next(m for m in managers.managers if m is not leader)
    assert leader.signal(signal.SIGTERM) == 0
    assert managers.leader(among=[other]) is other
    task_id = str(uuid.uuid4())
    assert submit([other.manager_url], task_id, test_image)
    view = managers.cluster_view(other)
    roles = {m["name"]: m["role"] for m in view["managers"]}
    assert roles[leader.manager_url.removeprefix("http://")] == "stopped"
