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
