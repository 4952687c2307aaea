"""StopSignals: a SIGTERM that lands while the main thread holds a lock must still stop the process.

Each case runs in its own interpreter: signal handlers are process-wide, and a deadlock has to be
observable as a timeout rather than hang the test worker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from salesloop.stop_signals import StopSignals

# The main thread holds an Event's internal lock (as it does inside Event.wait) when SIGTERM is
# delivered; the handler runs right there, between two bytecodes.
_HOLD_LOCK_AND_SIGNAL = """
import os, signal, threading, time
ev = threading.Event()
{install}
with ev._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):
        pass
{after}
"""


def _run(code: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_an_event_set_in_the_handler_deadlocks_in_this_situation() -> None:
    """The hazard is real: this is how the model server's workers used to stop."""
    code = _HOLD_LOCK_AND_SIGNAL.format(
        install="signal.signal(signal.SIGTERM, lambda *_: ev.set())", after="print('stopped')"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        _run(code, timeout=3)


def test_stop_signals_stops_in_the_same_situation_and_runs_callbacks_outside_the_handler() -> None:
    code = _HOLD_LOCK_AND_SIGNAL.format(
        install=(
            "from salesloop.stop_signals import StopSignals\n"
            "stop = StopSignals().install()\n"
            "seen = []\n"
            "stop.on_stop(lambda: (ev.set(), seen.append(threading.current_thread().name)))"
        ),
        after=("assert stop.wait(5)\nassert ev.wait(5)\nprint(stop.signal_name, seen)"),
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SIGTERM ['stop-signals']"


def test_sigint_is_handled_too_and_the_first_signal_is_kept() -> None:
    code = """
    import os, signal
    from salesloop.stop_signals import StopSignals
    stop = StopSignals().install()
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(5)
    print(stop.signal_name)
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SIGINT"


def test_wait_times_out_while_unset_and_returns_once_set() -> None:
    stop = StopSignals()
    started = time.monotonic()
    assert stop.wait(0.12) is False
    assert time.monotonic() - started >= 0.12
    assert not stop.is_set() and stop.signal_name is None
    stop.set()
    assert stop.wait(0) is True and stop.wait() is True
    assert stop.signal_name == "requested"


def test_callbacks_registered_before_the_stop_all_run_in_order() -> None:
    stop = StopSignals()
    ran: list[int] = []
    stop.on_stop(lambda: ran.append(1)).on_stop(lambda: ran.append(2))
    stop.set()
    deadline = time.monotonic() + 5
    while len(ran) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == [1, 2]
