"""The model's invariants, checked after every step (safety) and at quiescence (liveness)."""
from __future__ import annotations

from dataclasses import dataclass, field

from task import TRANSITIONS, State
from tests.sim.world import DOWN_AFTER, World


class InvariantViolation(AssertionError):
    """An invariant failed; the message names it."""


@dataclass
class Checker:
    """Remembers what the user was told and what was observed, and checks the invariants."""

    world: World
    acked: set[str] = field(default_factory=set)  # submit returned
    stop_acked: dict[str, int] = field(default_factory=dict)  # task -> attempt when stop returned
    last: dict[str, tuple] = field(default_factory=dict)  # task -> (state, attempt, node, version)
    placed_cut: dict[tuple[str, int], int] = field(default_factory=dict)  # (task, attempt) -> host cut_count
    lost: dict[str, bool] = field(default_factory=dict)
    checks: int = 0

    def fail(self, number: int, message: str) -> None:
        raise InvariantViolation(f"invariant {number}: {message}")

    def ack_submit(self, task_id: str) -> None:
        self.acked.add(task_id)

    def ack_stop(self, task_id: str, attempt: int) -> None:
        self.stop_acked.setdefault(task_id, attempt)

    # ----- after every step

    def step(self) -> None:
        """The safety invariants: 0 (no pass raised), 2, 3, 4 and 6."""
        world = self.world
        self.checks += 1
        if world.errors:
            self.fail(0, f"a pass raised: {world.errors[0]}")
        if world.manager is None:
            return
        self._liveness()
        tasks = {t.id: t for t in world.manager.list()}
        for task_id in self.acked:
            task = tasks.get(task_id)
            if task is None:
                self.fail(1, f"acknowledged task {task_id} is not at the manager")
            self._transition(task)
            if task_id in self.stop_acked and task.attempt > self.stop_acked[task_id]:
                self.fail(2, f"task {task_id} got attempt {task.attempt} after its stop was acknowledged "
                             f"at attempt {self.stop_acked[task_id]}")
            if task.node is not None:
                self.placed_cut.setdefault((task.id, task.attempt), world.hosts[task.node].cut_count)
        self._double_runs(tasks, final=False)

    def _liveness(self) -> None:
        """6: a node is declared lost only after down_after liveness checks in a row went
        unanswered; a declaration counts as a cut-off of that host."""
        for node in self.world.manager.nodes():
            was = self.lost.get(node.name, False)
            if node.lost and not was:
                self.world.hosts[node.name].cut_count += 1
                misses = self.world.net.unanswered_stats.get(node.address, 0)
                if misses < DOWN_AFTER:
                    self.fail(6, f"node {node.name} declared lost after {misses} unanswered liveness "
                                 f"check(s) in a row (down_after={DOWN_AFTER})")
            self.lost[node.name] = node.lost

    def _transition(self, task) -> None:
        """3: every observed change is an edge of the table, reports apply in version order; a terminal state is final."""
        before = self.last.get(task.id)
        now = (task.state, task.attempt, task.node, task.version)
        self.last[task.id] = now
        if before is None or before == now:
            return
        state, attempt, _, version = before
        if task.attempt == attempt and task.version < version:
            self.fail(3, f"task {task.id} attempt {attempt}: an older report (version {task.version} after "
                         f"{version}) was applied")
        if state.is_terminal:
            self.fail(3, f"task {task.id} left terminal {state.value} (attempt {attempt}) for "
                         f"{task.state.value} (attempt {task.attempt})")
        if task.attempt < attempt:
            self.fail(3, f"task {task.id} attempt went back from {attempt} to {task.attempt}")
        if task.attempt == attempt and task.state != state and task.state not in TRANSITIONS[state]:
            self.fail(3, f"task {task.id} went {state.value} -> {task.state.value} (attempt {attempt})")
        if task.attempt > attempt and State.SCHEDULED not in TRANSITIONS[state]:
            self.fail(3, f"task {task.id} placed again from {state.value}")

    def _double_runs(self, tasks: dict, final: bool) -> None:
        """4: at most one running container per task, except copies on hosts cut off since
        their attempt was placed (and none of those at quiescence)."""
        copies: dict[str, list[tuple[str, int]]] = {}
        for host in self.world.hosts.values():
            for status in host.runtime.running():
                copies.setdefault(status.task_id or "", []).append((host.name, int(status.labels["orca.attempt"])))
        for task_id, where in copies.items():
            if len(where) < 2:
                continue
            excused = [w for w in where if not final and self._excused(task_id, *w)]
            if len(where) - len(excused) > 1:
                self.fail(4, f"task {task_id} runs {len(where)} containers: {sorted(where)} "
                             f"(manager: {tasks.get(task_id) and (tasks[task_id].node, tasks[task_id].attempt)})")

    def _excused(self, task_id: str, host_name: str, attempt: int) -> bool:
        host = self.world.hosts[host_name]
        placed = self.placed_cut.get((task_id, attempt))
        return host.cut_off or placed is None or host.cut_count > placed

    # ----- at quiescence

    def final(self) -> None:
        """1, 2, 4, 5 once every fault has healed and nothing changes any more."""
        world = self.world
        self.checks += 1
        self.step()
        tasks = {t.id: t for t in world.manager.list()}
        running: dict[str, list[tuple[str, int]]] = {}
        for host in world.hosts.values():
            for status in host.runtime.running():
                attempt = int(status.labels["orca.attempt"])
                running.setdefault(status.task_id or "", []).append((host.name, attempt))
                task = tasks.get(status.task_id or "")
                if task is None or task.state.is_terminal or task.node != host.name or task.attempt != attempt:
                    self.fail(5, f"container {status.container_id} of task {status.task_id} attempt {attempt} "
                                 f"runs on {host.name}, but the manager has "
                                 f"{task and (task.state.value, task.node, task.attempt)}")
        self._double_runs(tasks, final=True)
        for task_id in sorted(self.acked):
            task = tasks[task_id]
            here = running.get(task_id, [])
            if task_id in self.stop_acked and (here or not task.state.is_terminal):
                self.fail(2, f"stopped task {task_id} is {task.state.value} with running copies {here}")
            if task.state.is_terminal:
                continue
            if task.state is not State.RUNNING or here != [(task.node, task.attempt)]:
                self.fail(1, f"task {task_id} is {task.state.value} on {task.node} attempt {task.attempt} "
                             f"at the manager, running copies: {here}")
