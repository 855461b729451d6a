"""LiveWorkers: a stopping run shuts every worker, and shutting one (removing its container, which
can take seconds) does not hold up threads that join or leave meanwhile."""

from __future__ import annotations

import threading
import time

from verifiers.worker import LiveWorkers


class _SlowShut:
    """Stands in for a Worker whose container takes a while to remove: shut() blocks until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.shut_calls = 0

    def shut(self) -> None:
        self.shut_calls += 1
        self.started.set()
        self.release.wait(10)


def test_join_and_leave_do_not_wait_on_a_slow_shut():
    live = LiveWorkers()
    slow, other = _SlowShut(), _SlowShut()
    other.release.set()
    live.join(slow)
    stopper = threading.Thread(target=live.shut_all)
    stopper.start()
    assert slow.started.wait(5)  # shut_all is inside slow.shut() now
    t0 = time.monotonic()
    live.leave(slow)
    live.join(other)  # joins after the stop began: shut at once, by the joining thread
    took = time.monotonic() - t0
    slow.release.set()
    stopper.join(5)
    assert took < 1.0, f"join/leave waited {took:.1f}s on another worker's shut"
    assert slow.shut_calls == 1 and other.shut_calls == 1


def test_every_worker_live_at_the_stop_is_shut_once():
    live = LiveWorkers()
    workers = [_SlowShut() for _ in range(4)]
    for w in workers:
        w.release.set()
        live.join(w)
    live.leave(workers[0])
    live.shut_all()
    assert [w.shut_calls for w in workers] == [0, 1, 1, 1]
