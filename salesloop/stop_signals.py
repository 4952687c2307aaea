"""SIGTERM/SIGINT as a flag: the signal handler stores a number and takes no lock.

Python runs a signal handler in the main thread between two bytecodes, possibly while that thread
holds a lock: the condition inside ``Event.wait``, a logger's output lock, the thread registry in
``Thread.start``. A handler that takes the same lock (``Event.set()``, ``log.info(...)``, starting a
thread) then waits for itself forever. It happened: a model-server worker that never drained after
SIGTERM, once in a CI run. So the handler here does one attribute store, and everything else (the
log line, waking other threads, shutting a server down) happens in ordinary code: a loop that polls
:meth:`StopSignals.wait`, or callbacks run by a small watcher thread (:meth:`StopSignals.on_stop`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

POLL_S = 0.05


class StopSignals:
    """Set by SIGTERM/SIGINT once :meth:`install`-ed, or by :meth:`set`; polled, never locked."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._callbacks: list[Callable[[], object]] = []

    def install(self, *signums: int) -> StopSignals:
        """Handle ``signums`` (default SIGTERM and SIGINT); must run in the main thread."""
        for signum in signums or (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def set(self) -> None:
        """Ask to stop without a signal (tests, or a stop from inside the process)."""
        if self.signum is None:
            self.signum = 0

    def is_set(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        """``"SIGTERM"`` and the like; ``"requested"`` after :meth:`set`; None while running."""
        if self.signum is None:
            return None
        return signal.Signals(self.signum).name if self.signum else "requested"

    def wait(self, timeout: float | None = None) -> bool:
        """Like ``Event.wait``: True once set, False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.signum is None:
            if deadline is None:
                time.sleep(POLL_S)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_S))
        return True

    def on_stop(self, callback: Callable[[], object]) -> StopSignals:
        """Run ``callback`` (in a watcher thread, not in the handler) once the flag is set.

        The watcher starts with the first callback: start it before forking workers and each child
        has no watcher (threads do not survive a fork), which is why a forked child makes its own.
        """
        self._callbacks.append(callback)
        if len(self._callbacks) == 1:
            threading.Thread(target=self._watch, name="stop-signals", daemon=True).start()
        return self

    def _watch(self) -> None:
        self.wait()
        for callback in self._callbacks:
            callback()
