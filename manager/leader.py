"""Leadership of one manager among several: claims the lease (store/lease.py) every few
seconds, and tells the manager when it becomes leader or stops being one.

A leader acts (dispatches, writes, commands workers) only while its lease is valid by its own
monotonic clock: from the moment it sent its last successful claim plus SAFETY x TTL. The
database judges expiry by its clock from the moment it committed the claim, which is later,
so a frozen or cut-off leader stops acting before anyone can take over. What it still sends
after waking is refused by the store's fence (its term) and by the workers (a newer term).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from store.lease import Lease, LeaseBackend

log = logging.getLogger(__name__)

SAFETY = 0.8  # a leader stops acting after this share of the TTL without a successful renewal
FOLLOW_EVERY = 0.5  # seconds between a follower's claims (also its read refresh), at most


class Leadership:
    """Runs the claims of one manager named `name`, reachable at `address`.

    Callbacks (called from the claiming thread, never two at once):
        on_elected(term): before the manager acts as leader (reload state, set fences).
        on_deposed(): after it stopped acting as leader (lost or gave up the lease).
        on_follow(): after each claim as a follower (refresh reads from the database).
    """

    def __init__(self, lease: LeaseBackend, name: str, address: str, ttl: float,
                 on_elected: Callable[[int], None] = lambda term: None,
                 on_deposed: Callable[[], None] = lambda: None,
                 on_follow: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lease, self.name, self.address, self.ttl = lease, name, address, ttl
        self.on_elected, self.on_deposed, self.on_follow = on_elected, on_deposed, on_follow
        self._clock = clock
        self._term: int | None = None  # the term this manager leads, None when following
        self._valid_until = 0.0
        self._seen = Lease()  # the lease at the last claim
        self._lock = threading.RLock()  # one claim, resignation or step-down at a time
        self._changed = threading.Condition()
        self._resigned = False

    # ----- state

    @property
    def is_leader(self) -> bool:
        """True while this manager may act: it holds the lease and its validity has not run out."""
        return self._term is not None and self._clock() < self._valid_until

    @property
    def term(self) -> int | None:
        """The term this manager leads (None when following)."""
        return self._term

    def leader(self, avoid: frozenset[str] | set[str] = frozenset()) -> tuple[str, str, int] | None:
        """(name, address, term) of the leader as last seen, or None when there is none (or
        it is one of `avoid`: known dead)."""
        seen = self._seen
        if self.is_leader:
            return self.name, self.address, self._term or 0
        if seen.leader and seen.holder != self.name and seen.holder not in avoid:
            return seen.holder, seen.address, seen.term
        return None

    def wait_for_leader(self, timeout: float, avoid: frozenset[str] | set[str] = frozenset()
                        ) -> tuple[str, str, int] | None:
        """The leader (not one of `avoid`), waiting up to `timeout` s for one; None if none."""
        deadline = self._clock() + timeout
        with self._changed:
            while (found := self.leader(avoid)) is None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                self._changed.wait(min(remaining, 0.1))
        return found

    def holds_lease(self) -> bool:
        """True when the lease, as last claimed, names this manager (leading, or taking over)."""
        return self._seen.leader == self.name

    def wait_to_lead(self, timeout: float) -> bool:
        """True once this manager leads (its take-over done), waiting up to `timeout` s."""
        deadline = self._clock() + timeout
        with self._changed:
            while not self.is_leader:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
        return True

    # ----- the claiming loop

    def interval(self) -> float:
        """Seconds until the next claim: a third of the TTL for a leader, FOLLOW_EVERY at most
        for a follower (so a resigned lease is taken over at once)."""
        return self.ttl / 3 if self._term is not None else min(FOLLOW_EVERY, self.ttl / 3)

    def run(self, halt: threading.Event) -> None:
        """Claim until `halt` is set."""
        while not halt.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one failed pass must never end the claims
                log.exception("lease pass failed; claiming again in %.1f s", self.interval())
            halt.wait(self.interval())

    def tick(self) -> None:
        """One claim: renew, take over or follow; step down when it fails for too long."""
        with self._lock:
            if self._resigned:
                return
            started = self._clock()
            try:
                lease = self.lease.claim(self.name, self.address, self._term, self.ttl)
            except Exception as exc:  # noqa: BLE001 - the database is out of reach: judged by validity
                log.warning("lease claim failed: %s", exc)
                if self._term is not None and not self.is_leader:
                    self.step_down("its lease could not be renewed in time")
                return
            self._seen = lease
            if lease.holder == self.name and lease.leader:
                self._lead(lease.term, started)
            else:
                if self._term is not None:
                    self.step_down(f"{lease.holder or 'nobody'} holds the lease now (term {lease.term})")
                self.on_follow()
        self._notify()

    def _lead(self, term: int, started: float) -> None:
        if self._term != term:
            log.info("elected leader for term %d", term)
            try:
                self.on_elected(term)
            except Exception:  # noqa: BLE001 - e.g. the reload failed: don't lead on half a state
                log.exception("taking over term %d failed; following until the next claim", term)
                self.on_deposed()  # fences back to "not leading"; the next claim takes over again
                return
            self._term = term
        self._valid_until = started + self.ttl * SAFETY

    def step_down(self, why: str) -> None:
        """Stop acting as leader now (a fenced write, a refusal naming a newer term, a lost lease)."""
        with self._lock:
            if self._term is None:
                return
            log.warning("stepping down from term %d: %s", self._term, why)
            self._term, self._valid_until = None, 0.0
            self.on_deposed()
        self._notify()

    def resign(self) -> None:
        """Give the lease up (shutdown): stop acting, then free the row so a follower takes
        over at its next claim. Idempotent; claims stop for good."""
        with self._lock:
            term, self._resigned = self._term, True
            if term is not None:
                self.step_down("resigning (shutdown)")
            try:
                self.lease.resign(self.name, term if term is not None else -1)
            except Exception as exc:  # noqa: BLE001 - the lease then expires by itself
                log.warning("could not give the lease up: %s", exc)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
