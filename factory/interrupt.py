"""SIGTERM handled like Ctrl-C, so a stopped run cleans up after itself.

Validation keeps worker containers running and removes them in ``finally`` blocks (each worker's
``close``, the run's closing ``sweep`` of its session label). Python's default SIGTERM ends the
process without running any of them, so ``timeout``, ``kill`` or a scheduler stopping a run left
its containers behind, still running a test suite (a networkx worker kept pytest busy for 20
minutes after its bench was killed). With this handler SIGTERM raises ``KeyboardInterrupt`` in the
main thread instead: the same unwinding as Ctrl-C, the same cleanup, and the process still ends.

Only the first SIGTERM raises. ``timeout`` signals the process and then its process group, so a
process can receive SIGTERM twice (1 of 40 runs here did): a second ``KeyboardInterrupt`` raised in
the middle of the cleanup abandoned it, and a stopped ``factory evaluate`` left a grading container
running. Later SIGTERMs are noted and ignored; SIGKILL (``timeout -k``) still ends a process whose
cleanup hangs, and a second Ctrl-C still interrupts, as Python's does.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["terminate_as_interrupt"]


_received: list[int] = []  # SIGTERMs so far, this process


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001 (signal handler signature)
    _received.append(signum)
    if len(_received) == 1:  # the process is already stopping after the first: let its cleanup run
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
