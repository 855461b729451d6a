"""bench/train_throughput.py runs end to end (tiny, CPU), and both models train the same on packed rows.

Short documents make every row hold several, so the comparison depends on transformers seeing the
packing (it derives the document mask from `position_ids` only without a KV cache): a first run of
this benchmark on the GPU compared our document-masked model with transformers attending across
documents.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def test_throughput_bench_runs_ours_and_transformers_on_the_same_weights(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    assert bench.main(["--recipe", "tiny", "--device", "cpu", "--batch", "1", "--seq-len", "128", "--steps", "2",
                       "--warmup", "1", "--median-doc-len", "20", "--variants", "ours-torch-sdpa,hf-grouped_mm",
                       "--json", str(out)]) == 0
    assert "| ours-torch-sdpa |" in capsys.readouterr().out
    ours, hf = json.loads(out.read_text())["results"]
    assert "error" not in ours and "error" not in hf
    assert abs(ours["first_loss"] - hf["first_loss"]) < 1e-4
    assert abs(ours["last_loss"] - hf["last_loss"]) < 1e-3


def _load_bench(name: str):
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_bench_runs_one_process_and_reports_it(tmp_path, capsys, monkeypatch):
    # One process, no torchrun: the one-GPU row of bench/train_scaling.py, on the CPU (plumbing only).
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    bench = _load_bench("train_scaling")
    out = tmp_path / "n1.json"
    assert bench.main(["--device", "cpu", "--recipe", "tiny", "--seq-len", "64", "--micro-batch", "1",
                       "--steps", "2", "--warmup", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["gpus"] == 1 and r["ep"] == 1 and len(r["losses"]) == 3 and r["tokens_per_s"] > 0
    capsys.readouterr()
    assert bench.main(["--report", str(out)]) == 0
    assert "| 1 | 1 | 64 |" in capsys.readouterr().out


def test_scaling_bench_memory_table_shows_expert_state_falling_with_ep(capsys):
    bench = _load_bench("train_scaling")
    assert bench.main(["--memory-table", "--recipe", "medium"]) == 0
    table = capsys.readouterr().out
    # medium: 16 layers x 64 experts x 3 x 1024 x 704 parameters x 16 bytes = 33.00 GiB, / ep.
    assert "| 1 | 64 | 2,214.6 M | 33.00 |" in table and "| 8 | 8 | 276.8 M | 4.12 |" in table
