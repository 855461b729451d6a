"""bench/mine_speed.py runs end to end on a tiny history and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_mine_speed_prints_a_table(capsys):
    path = Path(__file__).resolve().parents[2] / "bench" / "mine_speed.py"
    spec = importlib.util.spec_from_file_location("mine_speed", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--commits", "60", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "commits scanned / s" in out and "funnel" in out and "commits 60 -> PRs" in out
