"""The function SIGKILLed at random points in the middle of events, again and again.

functions-framework serves the function with gunicorn: a master process that imported the code and
holds the socket, and a worker process that runs the requests. A killer thread SIGKILLs the worker
(gunicorn forks a fresh one, as a Cloud Run instance is replaced) at a random moment while the
dispatcher keeps delivering, and every tenth time kills the whole function part (master and
worker) and starts it again. A kill counts as *mid-event* when the dispatcher saw its request cut
off (connection aborted), not merely refused; the test goes on until at least ``MID_EVENT_KILLS``
of those. Then the faults stop, every event is redelivered until it succeeds, and the tables and
the mailbox must be exactly those of the clean reference run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from salesloop.local.prepare import PreparedRun
from tests.reliability.conftest import Reference, assert_same_as_reference
from tests.reliability.loop import FAST_EVENTS, Loop, aborted_deliveries

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("reliability")]

MID_EVENT_KILLS = 50
REFILL_BELOW = 4  # pending deliveries under which the killer replays the acknowledged ones
MAX_KILLS = 250
WHOLE_PART_EVERY = 10


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return []


class Killer(threading.Thread):
    def __init__(self, loop: Loop, seed: int = 20161) -> None:
        super().__init__(name="killer", daemon=True)
        self.loop = loop
        self.rng = random.Random(seed)
        self.kills = 0
        self.whole_part_kills = 0
        self.mid_event = 0  # kills that cut at least one in-flight event off
        self.aborted = 0  # deliveries cut off, over all kills (two can be in flight at once)
        self.replays = 0  # times the drained queue was refilled with acknowledged events
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + 240

    def _worker(self, timeout_s: float = 60) -> int:
        """The current gunicorn worker of the function (waits for the respawn)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            proc = self.loop.stack.procs.get("function")
            if proc is not None and proc.poll() is None:
                kids = _children(proc.pid)
                if kids:
                    return kids[0]
            time.sleep(0.01)
        raise TimeoutError("no function worker came up")

    def run(self) -> None:
        try:
            while (
                self.mid_event < MID_EVENT_KILLS
                and self.kills < MAX_KILLS
                and time.monotonic() < self.deadline
            ):
                if self.loop.store.counts()["pending"] < REFILL_BELOW:
                    # Keep events in flight however fast the function drains the queue: the
                    # acknowledged ones come again, through the duplicate path (ledger found).
                    self.loop.store.replay_delivered(copies=2)
                    self.replays += 1
                worker = self._worker()
                time.sleep(self.rng.uniform(0.05, 1.5))  # somewhere inside the next event(s)
                if (self.kills + 1) % WHOLE_PART_EVERY == 0:
                    self.loop.stack.kill("function")
                    self.loop.stack.start("function", wait=False)
                    self.whole_part_kills += 1
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGKILL)
                self.kills += 1
                time.sleep(0.15)  # the dispatcher logs the cut-off delivery
                aborted = aborted_deliveries(self.loop)
                if aborted > self.aborted:  # this kill cut at least one event off
                    self.mid_event += 1
                self.aborted = aborted
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def test_sigkill_mid_event_at_least_50_times_then_exactly_once(
    run_copy: PreparedRun, jobs: list[tuple[str, pd.DataFrame]], reference: Reference
) -> None:
    # Each job eight times in the queue, and the killer replays the acknowledged ones whenever the
    # queue runs low: there is always an event in flight to be cut off (a fast function drained
    # eight copies after ~22 mid-event kills), and kills also land in the duplicate path (ledger
    # found, pending emails flushed).
    # Backoff up to 1 s: a whole-part restart (a few seconds of refused connections) then costs
    # each event a handful of attempts, not dozens; the policy (100 attempts) outlasts the chaos.
    events = {**FAST_EVENTS, "max_backoff_s": 1.0}
    with Loop(run_copy, dispatcher_args=["--copies", "8"], events=events) as loop:
        loop.start("warehouse", "model_server", "mailbox")
        loop.insert(jobs)
        loop.start("function", "dispatcher")
        loop.wait_enqueued()
        killer = Killer(loop)
        killer.start()
        killer.join(300)
        assert killer.error is None, killer.error
        assert killer.mid_event >= MID_EVENT_KILLS, (
            f"only {killer.mid_event} of {killer.kills} kills cut an event off; "
            f"queue: {loop.store.counts()}"
        )
        loop.stack.start("function")  # in case the last kill was of the whole part
        loop.wait_drained(timeout_s=180)
        assert loop.store.counts()["dead"] == 0
        assert_same_as_reference(loop, reference)
        print(
            f"kills={killer.kills} mid_event={killer.mid_event} aborted={killer.aborted}"
            f" whole_part={killer.whole_part_kills} replays={killer.replays}"
            f" acks={loop.store.total_acks()} attempts={loop.store.total_attempts()}"
        )
