"""CPU checks of bench/moe_kernels.py's optional peers: a peer that does not import is reported with
the reason, and the bench goes on without it (issue 25)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")


def _bench():
    path = Path(__file__).resolve().parents[2] / "bench" / "moe_kernels.py"
    spec = importlib.util.spec_from_file_location("moe_kernels_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("peer,module", [("sonic", "sonicmoe"), ("liger", "liger_kernel")])
def test_missing_peer_is_reported_not_fatal(peer, module, monkeypatch):
    bench = _bench()
    monkeypatch.setitem(sys.modules, module, None)  # import of it raises ImportError
    ok, why = bench.peer_status(peer)
    assert not ok and "Error" in why


def test_unknown_peer_is_named():
    ok, why = _bench().peer_status("nope")
    assert not ok and "sonic" in why and "liger" in why
