"""SIGTERM handled like Ctrl-C, so a stopped run cleans up after itself.

Validation keeps worker containers running and removes them in ``finally`` blocks (each worker's
``close``, the run's closing ``sweep`` of its session label). Python's default SIGTERM ends the
process without running any of them, so ``timeout``, ``kill`` or a scheduler stopping a run left
its containers behind, still running a test suite (a networkx worker kept pytest busy for 20
minutes after its bench was killed). With this handler SIGTERM raises ``KeyboardInterrupt`` in the
main thread instead: the same unwinding as Ctrl-C, the same cleanup, and the process still ends.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["terminate_as_interrupt"]


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001 (signal handler signature)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def terminate_as_interrupt() -> bool:
    """Install the handler where SIGTERM still has Python's default (only the main thread can, and a
    handler someone else installed is kept); whether SIGTERM now unwinds like Ctrl-C. Cleanup
    registered with ``atexit`` (rollouts' runtimes) runs too: the interpreter exits normally."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current not in (signal.SIG_DFL, None, _raise_interrupt):
        return False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True
