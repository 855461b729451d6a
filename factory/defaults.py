"""Every default that more than one place needs, defined once.

Like ``schema`` and ``errors``, this module imports nothing of ours, so the config, the CLI and
every stage package read their defaults here instead of repeating numbers.
"""

from __future__ import annotations

# One test session in a sandbox (baseline runs; the hard ceiling for everything else).
TEST_TIMEOUT_S = 900.0
# Grading one prediction: the whole session of its FAIL_TO_PASS and PASS_TO_PASS tests.
GRADE_TIMEOUT_S = 600.0
# Validation when no baseline is there to derive a limit from.
VALIDATE_TIMEOUT_S = 300.0
# Container limits (verifiers.isolation): memory with swap included, processes, CPUs, /tmp size.
MEM = "4g"
PIDS = 1024
CPUS = 2.0
TMPFS_SIZE = "1g"
# The baseline's reruns (flakiness is measured over these).
RERUNS = 3
# Validation's strategy and verdict rule.
STRATEGY = "selected"
MAX_F2P = 50
# The audit of the selected strategy: this share of its acceptances is judged again with the full suite.
CONFIRM_FRACTION = 0.05


def cpu_cores() -> int:
    """The CPU cores this process may use: validation's default worker count (one container each)."""
    import os  # noqa: PLC0415

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Grading predictions in parallel (each is one container).
GRADE_WORKERS = 2
