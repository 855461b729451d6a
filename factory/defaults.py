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
# Grading predictions in parallel (each is one container).
GRADE_WORKERS = 2
